//go:build linux

package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/spraydryfs/spraydryfs/backend/bucket"
	"github.com/spraydryfs/spraydryfs/backend/hash"
	"github.com/spraydryfs/spraydryfs/backend/layout"
	"github.com/spraydryfs/spraydryfs/backend/remote"
	"github.com/spraydryfs/spraydryfs/integration/conformance"
	"github.com/spraydryfs/spraydryfs/integration/fixture"
)

// The S3 tests run against a real S3 server: the one named by
// SPRAYDRYFS_TEST_S3_ENDPOINT, SPRAYDRYFS_TEST_S3_KEY and
// SPRAYDRYFS_TEST_S3_SECRET (.ci/run starts versitygw and sets them), or
// else a versitygw on PATH that the tests start themselves, on loopback,
// with its posix backend in a temporary directory.
const (
	s3EndpointEnv = "SPRAYDRYFS_TEST_S3_ENDPOINT"
	s3KeyEnv      = "SPRAYDRYFS_TEST_S3_KEY"
	s3SecretEnv   = "SPRAYDRYFS_TEST_S3_SECRET"
	// s3Bucket holds every test's objects, each test under its own prefix.
	s3Bucket = "spraydryfs-test"
)

// s3Server is the server the S3 tests share.
var s3Server struct {
	once                  sync.Once
	endpoint, key, secret string
	reason                string    // why there is none
	cmd                   *exec.Cmd // versitygw, if started here
	dir                   string    // its directory, if started here

	mu         sync.Mutex
	prefixes   int
	bucketMade bool
}

// requireS3 skips (fails in CI) without an S3 server; it points the AWS
// settings of this process (and so of the commands it runs) at the server
// and returns a client for the tests' bucket.
func requireS3(t *testing.T) *s3.Client {
	t.Helper()
	s3Server.once.Do(startS3)
	unavailable(t, "S3 tests", s3Server.reason)
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": s3Server.endpoint, "AWS_ACCESS_KEY_ID": s3Server.key, "AWS_SECRET_ACCESS_KEY": s3Server.secret,
		"AWS_REGION": "us-east-1", "AWS_PROFILE": "", "AWS_SESSION_TOKEN": "",
		"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired))
	if err != nil {
		t.Fatal(err)
	}
	c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	s3Server.mu.Lock()
	defer s3Server.mu.Unlock()
	if !s3Server.bucketMade {
		if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s3Bucket)}); err != nil {
			if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s3Bucket)}); err != nil {
				t.Fatalf("create bucket %s at %s: %v", s3Bucket, s3Server.endpoint, err)
			}
		}
		s3Server.bucketMade = true
	}
	return c
}

// s3URL returns a new prefix of the tests' bucket, s3://BUCKET/PREFIX/.
func s3URL(t *testing.T) string {
	s3Server.mu.Lock()
	defer s3Server.mu.Unlock()
	s3Server.prefixes++
	return fmt.Sprintf("s3://%s/%s-%d-%d/", s3Bucket, strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), os.Getpid(), s3Server.prefixes)
}

// startS3 finds or starts the server, or sets the reason there is none.
func startS3() {
	if ep := os.Getenv(s3EndpointEnv); ep != "" {
		s3Server.endpoint, s3Server.key, s3Server.secret = ep, os.Getenv(s3KeyEnv), os.Getenv(s3SecretEnv)
		if s3Server.key == "" || s3Server.secret == "" {
			s3Server.reason = fmt.Sprintf("%s is set, but not %s and %s", s3EndpointEnv, s3KeyEnv, s3SecretEnv)
		}
		return
	}
	vgw, err := exec.LookPath("versitygw")
	if err != nil {
		s3Server.reason = "missing versitygw (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0), and " + s3EndpointEnv + " is not set"
		return
	}
	dir, err := os.MkdirTemp("", "spraydryfs-s3-")
	if err != nil {
		s3Server.reason = err.Error()
		return
	}
	root := filepath.Join(dir, "root")
	os.Mkdir(root, 0o755)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s3Server.reason = err.Error()
		return
	}
	addr := ln.Addr().String()
	ln.Close()
	s3Server.key, s3Server.secret = "spraydryfstest", "spraydryfs-test-secret"
	cmd := exec.Command(vgw, "--access", s3Server.key, "--secret", s3Server.secret, "--port", addr, "--keep-alive", "--quiet", "posix", root)
	log, _ := os.Create(filepath.Join(dir, "versitygw.log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		s3Server.reason = "start versitygw: " + err.Error()
		return
	}
	s3Server.cmd, s3Server.dir = cmd, dir
	s3Server.endpoint = "http://" + addr
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "versitygw.log"))
	s3Server.reason = "versitygw did not start: " + string(b)
}

// stopS3 stops a versitygw the tests started (TestMain calls it).
func stopS3() {
	if s3Server.cmd != nil {
		s3Server.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- s3Server.cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			s3Server.cmd.Process.Kill()
			<-done
		}
		os.RemoveAll(s3Server.dir)
	}
}

// s3Suite publishes stores to prefixes of the tests' bucket, once each.
type s3Suite struct {
	client *s3.Client
	mu     sync.Mutex
	seen   map[string]string // store path → s3:// URL
}

func newS3Suite(t *testing.T) *s3Suite {
	return &s3Suite{client: requireS3(t), seen: map[string]string{}}
}

// publish pushes storePath (once) and returns its s3:// URL.
func (s *s3Suite) publish(t *testing.T, storePath string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	url, ok := s.seen[storePath]
	if !ok {
		url = s3URL(t)
		pushOK(t, storePath, url)
		s.seen[storePath] = url
	}
	return url
}

// mount mounts the bucket copy of storePath with an empty local cache of
// its own, so that every read goes to the server.
func (s *s3Suite) mount(t *testing.T, storePath, which string) (string, func()) {
	dir, _, stop := startMount(t, s.publish(t, storePath), which, "--cache-dir", t.TempDir())
	return dir, stop
}

// damage alters chunk h's object in the bucket, not the store.
func (s *s3Suite) damage(t *testing.T, storePath string, h hash.Hash) {
	flipS3(t, s.client, s.publish(t, storePath), layout.Key(layout.Chunk, h))
}

// pushOK pushes every root of storePath to url.
func pushOK(t *testing.T, storePath, url string, roots ...string) result {
	t.Helper()
	return ok(t, append([]string{"-s", storePath, "push", "-j", "8", url}, roots...)...)
}

// s3Key splits an s3:// URL and key into the bucket and the object's key.
func s3Key(url, key string) (string, string) {
	rest := strings.TrimPrefix(url, "s3://")
	b, prefix, _ := strings.Cut(rest, "/")
	return b, prefix + key
}

// flipS3 damages the last byte of object key under url, through the S3 API.
func flipS3(t *testing.T, c *s3.Client, url, key string) {
	ctx := context.Background()
	b, k := s3Key(url, key)
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &b, Key: &k})
	if err != nil {
		t.Fatalf("get %s: %v", k, err)
	}
	data, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 0x10
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &b, Key: &k, Body: bytes.NewReader(data)}); err != nil {
		t.Fatalf("put %s: %v", k, err)
	}
}

// TestS3Conformance pushes the conformance fixture to a bucket prefix of a
// real S3 server (versitygw) and runs the shared suite through `mount -s
// s3://…` (the kernel's FUSE client): the tree, find/tar/diff, read-only
// errors, stable inodes, parallel readers, the namespace, and an object
// altered in the bucket failing with EIO.
func TestS3Conformance(t *testing.T) {
	requireFUSE(t)
	s := newS3Suite(t)
	conformance.Run(t, conformance.Suite{
		Caps: conformance.Caps{
			Caps:         fixture.All(),
			StableInodes: true,
			Tools:        true,
			WriteErrno:   syscall.EROFS,
			CorruptErrno: syscall.EIO,
		},
		Mount:  s.mount,
		Damage: s.damage,
	})
}

// TestS3ConcurrentPushes: pushes of different roots to one bucket prefix
// at once, from separate stores, all survive in the index; and updates
// of the index racing through the real server (each holding the index it
// read for a while) are all kept: the server refuses the stale If-Match
// with 412 and the loser updates again.
func TestS3ConcurrentPushes(t *testing.T) {
	requireS3(t)
	url := s3URL(t)
	const n = 4
	stores := make([]string, n)
	srcs := make([]string, n)
	for i := range n {
		srcs[i] = t.TempDir()
		for j := range 40 {
			os.WriteFile(filepath.Join(srcs[i], fmt.Sprintf("f%d", j)), []byte(strings.Repeat(fmt.Sprintf("publisher %d file %d\n", i, j), 50)), 0o644)
		}
		stores[i] = filepath.Join(t.TempDir(), "s.sdfs")
		ok(t, "-s", stores[i], "ingest", fmt.Sprintf("p%d@1", i), srcs[i])
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := spraydryfs(t, "-s", stores[i], "push", url); r.code != 0 {
				t.Errorf("push %d: exit %d: %s", i, r.code, r.stderr)
			}
		}()
	}
	wg.Wait()
	roots := ok(t, "-s", url, "roots").stdout
	for i := range n {
		if !strings.Contains(roots, fmt.Sprintf("p%d@1", i)) {
			t.Errorf("p%d@1 lost from the index:\n%s", i, roots)
		}
	}
	out := filepath.Join(t.TempDir(), "out")
	ok(t, "-s", url, "extract", "p2@1", out)
	if b, err := exec.Command("diff", "-r", srcs[2], out).CombinedOutput(); err != nil {
		t.Fatalf("diff: %v\n%s", err, b)
	}

	// The race itself, made certain: each update waits after reading the
	// index, so most of them find it replaced when they write.
	var logged bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logged.Write(p)
	}), nil))
	race := s3URL(t)
	var calls sync.Map
	const racers = 6
	errs := make(chan error, racers)
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := bucket.Open(context.Background(), race, bucket.Options{Options: remote.Options{Log: log, Backoff: 20 * time.Millisecond}, IndexAttempts: 30})
			if err != nil {
				errs <- err
				return
			}
			errs <- b.UpdateIndex(context.Background(), func(old []byte) ([]byte, error) {
				v, _ := calls.LoadOrStore(i, new(int))
				*v.(*int)++
				time.Sleep(30 * time.Millisecond)
				return append(old, fmt.Sprintf("racer %d\n", i)...), nil
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	b, err := bucket.Open(context.Background(), race, bucket.Options{})
	if err != nil {
		t.Fatal(err)
	}
	idx, err := b.Fetch(context.Background(), layout.IndexKey, 1<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for i := range racers {
		if !bytes.Contains(idx, fmt.Appendf(nil, "racer %d\n", i)) {
			t.Errorf("racer %d lost: %q", i, idx)
		}
		if v, ok := calls.Load(i); ok {
			total += *v.(*int)
		}
	}
	if total <= racers || !strings.Contains(logged.String(), "the index changed") {
		t.Errorf("%d updates for %d racers: the server never refused a stale index (conditional writes ignored?)\n%s", total, racers, logged.String())
	}
	t.Logf("%d index updates for %d racers", total, racers)
}

// wantError asserts exit 1 and an error, the last line of stderr, that
// contains want (warnings logged before it are fine).
func wantError(t *testing.T, r result, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	last := lines[len(lines)-1]
	if r.code != 1 || !strings.HasPrefix(last, "spraydryfs: ") || !strings.Contains(last, want) {
		t.Errorf("exit %d, stderr %q; want exit 1 and an error containing %q", r.code, r.stderr, want)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestS3AlteredObject: a chunk altered in the bucket is detected: cat and
// extract fail with a one-line error naming the damage, a mount answers
// EIO for that file, logged with its address after one more fetch, and
// the other files read; no wrong byte is returned. An endpoint that does
// not answer fails quickly with a one-line error.
func TestS3AlteredObject(t *testing.T) {
	requireFUSE(t)
	c := requireS3(t)
	st, src := remoteStore(t, 30)
	url := s3URL(t)
	// Without packs: the altered object is then the file's only copy
	// (TestRemoteAlteredObject alters the packs too).
	ok(t, "-s", st, "push", "--no-packs", url)
	victim := filepath.Join("d3", "f0003.txt")
	content, _ := os.ReadFile(filepath.Join(src, victim))
	h := hash.Sum(content)
	flipS3(t, c, url, layout.Key(layout.Chunk, h))

	r := spraydryfs(t, "-s", url, "cat", "r@1/d3/f0003.txt")
	wantError(t, r, "corrupt chunk "+h.String())
	if r.stdout != "" {
		t.Errorf("cat of an altered file wrote %d bytes", len(r.stdout))
	}
	wantError(t, spraydryfs(t, "-s", url, "extract", "r@1", filepath.Join(t.TempDir(), "out")), "corrupt chunk "+h.String())
	if r := spraydryfs(t, "-s", url, "check", "--read-data"); r.code != 1 || !strings.Contains(r.stderr, h.String()) {
		t.Errorf("check: exit %d, %s", r.code, r.stderr)
	}

	dir, stderr, stop := startMount(t, url, "r@1", "--cache-dir", t.TempDir())
	got, err := os.ReadFile(filepath.Join(dir, victim))
	good, gerr := os.ReadFile(filepath.Join(dir, "d4", "f0004.txt"))
	stop()
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("altered object through the mount: %d bytes, %v; want EIO", len(got), err)
	}
	if want, _ := os.ReadFile(filepath.Join(src, "d4", "f0004.txt")); gerr != nil || !bytes.Equal(good, want) {
		t.Fatalf("healthy file: %v", gerr)
	}
	if !strings.Contains(stderr.String(), h.String()) || !strings.Contains(stderr.String(), "fetching it again") {
		t.Errorf("mount log lacks the address %s or the refetch:\n%s", h, stderr.String())
	}

	t.Setenv("AWS_ENDPOINT_URL", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)))
	start := time.Now()
	// (--no-cache: the local cache would serve the index it kept.)
	wantError(t, spraydryfs(t, "-s", url, "--no-cache", "roots"), "remote unavailable: GET "+url+"index.json: dial tcp")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("failing took %v", d)
	}
}

// TestS3PushKilledResumes: a push to a bucket killed with SIGKILL midway
// publishes no index; the re-run sends only what is missing, and the
// bucket reads back.
func TestS3PushKilledResumes(t *testing.T) {
	c := requireS3(t)
	st, src := remoteStore(t, 3000)
	url := s3URL(t)
	bkt, prefix := s3Key(url, "")
	count := func() int { // the objects in the bucket
		n := 0
		pages := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bkt, Prefix: aws.String(prefix + "objects/")})
		for pages.HasMorePages() {
			out, err := pages.NextPage(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			n += len(out.Contents)
		}
		return n
	}
	cmd := exec.Command(bin, "-s", st, "push", "-j", "2", url)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	for range 5000 {
		if count() >= 200 {
			cmd.Process.Kill()
			killed = true
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	err := cmd.Wait()
	if !killed || err == nil {
		t.Fatalf("push finished before it could be killed (%v)", err)
	}
	if _, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &bkt, Key: aws.String(prefix + layout.IndexKey)}); err == nil {
		t.Fatal("a killed push left an index")
	}
	before := count()
	total, sent, there := pushCounts(t, ok(t, "-s", st, "push", url).stdout)
	if there < before-5 || sent != total-there || sent == 0 {
		t.Fatalf("re-run: %d objects, %d sent, %d there; %d were there after the kill", total, sent, there, before)
	}
	if _, sent, _ := pushCounts(t, ok(t, "-s", st, "push", url).stdout); sent != 0 {
		t.Errorf("third push sent %d objects", sent)
	}
	out := filepath.Join(t.TempDir(), "out")
	ok(t, "-s", url, "extract", "r@1", out)
	if b, err := exec.Command("diff", "-r", src, out).CombinedOutput(); err != nil {
		t.Fatalf("diff: %v\n%s", err, b)
	}
}
