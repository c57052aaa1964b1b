// Package bucket reads and writes published layouts (package layout) in an
// S3 bucket prefix, s3://BUCKET/PREFIX, through any S3-compatible server.
//
// The endpoint, region and credentials come from the AWS SDK's standard
// environment and config files (AWS_ENDPOINT_URL, AWS_REGION,
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/config,
// AWS_CA_BUNDLE, …). With a custom endpoint, requests use path-style
// addressing (http://HOST/BUCKET/KEY), which every S3-compatible server
// understands; the region defaults to us-east-1.
package bucket

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/spraydryfs/spraydryfs/backend/layout"
	"github.com/spraydryfs/spraydryfs/backend/remote"
	"github.com/spraydryfs/spraydryfs/backend/store"
)

// Bucket is a layout in an S3 bucket prefix: a layout.Fetcher and a
// layout.Target. One client keeps its connections alive between requests;
// every request is bounded in time, and network failures and server
// errors are tried again a few times with backoff. It is safe for
// concurrent use.
type Bucket struct {
	client *s3.Client
	bucket string
	prefix string // "" or ending in "/"
	opt    Options

	// noConditional is set once the server has refused a conditional
	// write as not implemented.
	noConditional atomic.Bool
	down          remote.Outage

	mu        sync.Mutex
	indexETag string
	indexBody []byte

	// lists holds the listings Has takes, one per fan-out directory.
	listMu sync.Mutex
	lists  map[string]*listing
	// noList is set once the server has refused a listing (no
	// s3:ListBucket permission, say): Has sends a HEAD per object.
	noList atomic.Bool
}

// listing is the keys under one fan-out directory, once done is closed.
type listing struct {
	done     chan struct{}
	keys     map[string]struct{}
	err      error
	canceled bool // the listing caller's context ended: its error is its own
}

// Options tune a Bucket; zero values pick the defaults.
type Options struct {
	// Timeouts, attempts, backoff, connections and log, as for HTTP.
	remote.Options
	// IndexAttempts is how many times UpdateIndex tries to replace an
	// index that others keep replacing first (10).
	IndexAttempts int
}

// IsURL reports whether s names an S3 bucket prefix.
func IsURL(s string) bool { return strings.HasPrefix(s, "s3://") }

// Open returns the layout at rawURL (s3://BUCKET[/PREFIX]), with the
// client configured from the SDK's environment and config files. It sends
// no request.
func Open(ctx context.Context, rawURL string, opt Options) (*Bucket, error) {
	bucket, prefix, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	opt.Options = opt.Options.WithDefaults()
	if opt.IndexAttempts <= 0 {
		opt.IndexAttempts = 10
	}
	// The SDK loads AWS_CA_BUNDLE into the client's transport only when
	// the client is its own BuildableClient ("unsupported transport"
	// otherwise), so the transport is tuned through it.
	hc := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) {
			d.Timeout = 5 * time.Second
			d.KeepAlive = 30 * time.Second
		}).
		WithTransportOptions(func(tr *http.Transport) {
			tr.TLSHandshakeTimeout = 5 * time.Second
			tr.ResponseHeaderTimeout = 10 * time.Second
			tr.MaxIdleConns = opt.Conns
			tr.MaxIdleConnsPerHost = opt.Conns
			tr.IdleConnTimeout = 90 * time.Second
			// Objects are compressed already.
			tr.DisableCompression = true
		})
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithHTTPClient(hc),
		config.WithDefaultRegion("us-east-1"),
		// Since SDK v1.73 the default adds checksums to every request and
		// demands them in responses, which S3-compatible servers refuse or
		// lack; objects are verified against their addresses anyway.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
		// Retries are ours (below), so that a body cut short is retried
		// too, and every retry is logged.
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
	)
	if err != nil {
		return nil, fmt.Errorf("%s: AWS configuration: %w", rawURL, err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		// AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3 or endpoint_url: an
		// S3-compatible server, which may not have a DNS name per bucket.
		if o.BaseEndpoint != nil {
			o.UsePathStyle = true
		}
	})
	return &Bucket{client: client, bucket: bucket, prefix: prefix, opt: opt, lists: map[string]*listing{}}, nil
}

// parseURL splits s3://BUCKET/PREFIX; the prefix is "" or ends in "/".
func parseURL(rawURL string) (bucket, prefix string, err error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "s3" {
		return "", "", fmt.Errorf("not an s3://BUCKET/PREFIX URL: %q", rawURL)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Port() != "" {
		return "", "", fmt.Errorf("s3 URL %q: only s3://BUCKET/PREFIX (the endpoint and credentials come from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, … or ~/.aws)", rawURL)
	}
	if !validBucket(u.Host) {
		return "", "", fmt.Errorf("s3 URL %q: %q is not a bucket name (3 to 63 lowercase letters, digits, dots and hyphens)", rawURL, u.Host)
	}
	prefix = strings.TrimSuffix(strings.TrimPrefix(u.Path, "/"), "/")
	for _, part := range strings.Split(prefix, "/") {
		if prefix != "" && (part == "" || part == "." || part == "..") {
			return "", "", fmt.Errorf("s3 URL %q: the prefix has an empty, . or .. part", rawURL)
		}
	}
	if prefix != "" {
		prefix += "/"
	}
	return u.Host, prefix, nil
}

// validBucket accepts S3's bucket names (and the older ones with
// underscores that some servers still allow).
func validBucket(s string) bool {
	if len(s) < 3 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		edge := i == 0 || i == len(s)-1
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '-' || c == '_') && !edge:
		default:
			return false
		}
	}
	return true
}

// String returns the layout's URL.
func (b *Bucket) String() string { return "s3://" + b.bucket + "/" + b.prefix }

func (b *Bucket) key(key string) string { return b.prefix + key }

// errPermanent marks failures that another attempt would not change.
type errPermanent struct{ error }

func (e errPermanent) Unwrap() error { return e.error }

// errPrecondition is a conditional write's 412 (or 409, a concurrent
// conditional write): the object is there, or the index has changed.
var errPrecondition = errors.New("precondition failed")

// errNotImplemented is a server's 501 for a conditional write.
var errNotImplemented = errors.New("not implemented by the server")

// deniedError is a 403 that refuses the request, not the credentials.
type deniedError struct{ error }

func (e deniedError) Unwrap() error { return e.error }

// retry runs op up to Attempts times (once while the server is down, see
// remote.Outage), each bounded by Timeout, waiting with doubling backoff
// between attempts, until it succeeds or fails permanently (errPermanent,
// or the caller's context ending).
func (b *Bucket) retry(ctx context.Context, what string, op func(ctx context.Context) error) error {
	wait := b.opt.Backoff
	attempts := b.down.Attempts(b.opt.Attempts)
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, b.opt.Timeout)
		err := op(actx)
		cancel()
		var perm errPermanent
		if err == nil || errors.As(err, &perm) {
			b.down.Answered()
			if err != nil {
				return perm.error
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
		if attempt >= attempts {
			b.down.Failed()
			return err
		}
		b.opt.Log.Warn("s3 request failed; retrying", "request", what, "attempt", attempt, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return fmt.Errorf("%w (after: %v)", ctx.Err(), err)
		}
		wait *= 2
	}
}

// classify turns an SDK error of request what (such as "GET s3://b/k")
// into ours: a missing object wraps layout.ErrNotFound, a refused
// precondition errPrecondition, network failures, timeouts and server
// errors remote.ErrUnavailable (retried); anything else (403, a missing
// bucket, bad credentials) is permanent. GETs and HEADs go through
// classifyRead.
func classify(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errPermanent{fmt.Errorf("%s: %w", what, ctx.Err())}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s: timed out", remote.ErrUnavailable, what)
	}
	var send *smithyhttp.RequestSendError
	if errors.As(err, &send) {
		var cv *tls.CertificateVerificationError
		if errors.As(err, &cv) { // another attempt would be refused alike
			return errPermanent{fmt.Errorf("%w: %s: %v", remote.ErrUnavailable, what, cv)}
		}
		cause := send.Err
		var ue *url.Error // "Get "http://…?x-id=GetObject": …" says what we say
		if errors.As(cause, &ue) {
			cause = ue.Err
		}
		return fmt.Errorf("%w: %s: %v", remote.ErrUnavailable, what, cause)
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		status := re.HTTPStatusCode()
		msg := fmt.Sprintf("%s: %d %s", what, status, apiMessage(err, status))
		var api smithy.APIError
		code := ""
		if errors.As(err, &api) {
			code = api.ErrorCode()
		}
		switch {
		case code == "NoSuchBucket":
			return errPermanent{fmt.Errorf("%s: no such bucket", what)}
		case status == http.StatusNotFound:
			return errPermanent{fmt.Errorf("%s: %w", what, layout.ErrNotFound)}
		case status == http.StatusPreconditionFailed || code == "ConditionalRequestConflict":
			return errPermanent{fmt.Errorf("%s: %w", what, errPrecondition)}
		case status == http.StatusNotImplemented:
			return errPermanent{fmt.Errorf("%s: %w", msg, errNotImplemented)}
		case status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout:
			return fmt.Errorf("%w: %s", remote.ErrUnavailable, msg)
		case accessDenied(err):
			return errPermanent{deniedError{errors.New(msg)}}
		}
		return errPermanent{errors.New(msg)}
	}
	var de *smithy.DeserializationError
	if errors.As(err, &de) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %s: %v", remote.ErrUnavailable, what, err)
	}
	// Before any request: credentials, signing, endpoint resolution.
	return errPermanent{fmt.Errorf("%s: %w", what, err)}
}

// classifyRead is classify for a GET or HEAD of key: for an object, a 403
// is a missing object too (see layout.IsObjectKey), unless its error code
// says the credentials themselves were refused. A HEAD's 403 has no body,
// so no code: push's HEAD then says absent, and its PUT fails instead.
func classifyRead(ctx context.Context, what, key string, err error) error {
	if !layout.IsObjectKey(key) || !accessDenied(err) {
		return classify(ctx, what, err)
	}
	return errPermanent{fmt.Errorf("%s: 403 %s: %w", what, apiMessage(err, http.StatusForbidden), layout.ErrNotFound)}
}

// accessDenied reports a 403 that refuses the request, not the
// credentials: what S3 answers for a key that is not there to a client
// without s3:ListBucket.
func accessDenied(err error) bool {
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusForbidden {
		return false
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired":
			return false
		}
	}
	return true
}

// apiMessage is the server's error code and message, or the status text.
func apiMessage(err error, status int) string {
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() != "" {
		if m := api.ErrorMessage(); m != "" {
			return api.ErrorCode() + ": " + m
		}
		return api.ErrorCode()
	}
	return http.StatusText(status)
}

// Fetch implements layout.Fetcher. S3 is the origin, with no cache in
// between, so fresh changes nothing (another fetch can still heal damage
// in transit). The index is revalidated with its ETag.
func (b *Bucket) Fetch(ctx context.Context, key string, limit int64, _ bool) ([]byte, error) {
	what := "GET " + b.String() + key
	var out []byte
	err := b.retry(ctx, what, func(ctx context.Context) error {
		var err error
		out, err = b.get(ctx, what, key, limit)
		return err
	})
	return out, err
}

// get makes one attempt at object key.
func (b *Bucket) get(ctx context.Context, what, key string, limit int64) ([]byte, error) {
	in := &s3.GetObjectInput{Bucket: &b.bucket, Key: aws.String(b.key(key))}
	isIndex := key == layout.IndexKey
	var cached []byte
	if isIndex {
		b.mu.Lock()
		if b.indexETag != "" {
			in.IfNoneMatch = aws.String(b.indexETag)
			cached = b.indexBody
		}
		b.mu.Unlock()
	}
	resp, err := b.client.GetObject(ctx, in)
	if err != nil {
		var re *smithyhttp.ResponseError
		if isIndex && cached != nil && errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotModified {
			return cached, nil
		}
		return nil, classifyRead(ctx, what, key, err)
	}
	defer resp.Body.Close()
	if resp.ContentLength != nil && *resp.ContentLength > limit {
		return nil, errPermanent{fmt.Errorf("%w: %s is %d bytes, more than %d", store.ErrCorrupt, what, *resp.ContentLength, limit)}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, classify(ctx, what, &smithyhttp.RequestSendError{Err: err})
	}
	if int64(len(data)) > limit {
		return nil, errPermanent{fmt.Errorf("%w: %s is more than %d bytes", store.ErrCorrupt, what, limit)}
	}
	if resp.ContentLength != nil && int64(len(data)) != *resp.ContentLength {
		return nil, fmt.Errorf("%w: %s: %d of %d bytes", remote.ErrUnavailable, what, len(data), *resp.ContentLength)
	}
	if isIndex {
		b.mu.Lock()
		b.indexETag, b.indexBody = aws.ToString(resp.ETag), data
		b.mu.Unlock()
	}
	return data, nil
}

// Has implements layout.Target. An object's presence is answered from a
// listing of its fan-out directory (objects/KIND/ab/), taken at the first
// question about it: one LIST request per 1,000 objects rather than a HEAD
// each (a push of the gomod corpus: 42,197 HEADs). Objects are immutable
// and push never removes one, so a listing stays true; an object another
// push adds later is absent from it, and Put's If-None-Match leaves it
// alone. Other keys, and every key once the server has refused a listing,
// get a HEAD.
func (b *Bucket) Has(ctx context.Context, key string) (bool, error) {
	dir := path.Dir(key) + "/"
	if !strings.HasPrefix(key, "objects/") || b.noList.Load() {
		return b.head(ctx, key)
	}
	l, err := b.listed(ctx, dir)
	if err != nil {
		return false, err
	}
	if l == nil {
		return b.head(ctx, key)
	}
	_, ok := l.keys[key]
	return ok, nil
}

// listed returns the listing of dir, taking it unless another call has;
// nil if the server refuses listings. A caller that waited on another's
// listing which that caller's context ended takes it again itself.
func (b *Bucket) listed(ctx context.Context, dir string) (*listing, error) {
	for {
		b.listMu.Lock()
		l, ok := b.lists[dir]
		if !ok {
			l = &listing{done: make(chan struct{})}
			b.lists[dir] = l
		}
		b.listMu.Unlock()
		if ok {
			select {
			case <-l.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		} else {
			l.keys, l.err = b.list(ctx, dir)
			l.canceled = l.err != nil && ctx.Err() != nil
			close(l.done)
		}
		if l.err == nil {
			return l, nil
		}
		if errors.Is(l.err, remote.ErrUnavailable) || l.canceled || ctx.Err() != nil {
			b.listMu.Lock()
			if b.lists[dir] == l { // the next question tries again
				delete(b.lists, dir)
			}
			b.listMu.Unlock()
			if l.canceled && ctx.Err() == nil {
				continue
			}
			return nil, l.err
		}
		if !b.noList.Swap(true) {
			b.opt.Log.Warn("the S3 server refused to list the bucket; asking for each object instead", "bucket", b.String(), "err", l.err)
		}
		return nil, nil
	}
}

// list returns the keys under dir (relative to the prefix).
func (b *Bucket) list(ctx context.Context, dir string) (map[string]struct{}, error) {
	what := "LIST " + b.String() + dir
	keys := map[string]struct{}{}
	var token *string
	for {
		var out *s3.ListObjectsV2Output
		err := b.retry(ctx, what, func(ctx context.Context) error {
			var err error
			out, err = b.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
				Bucket: &b.bucket, Prefix: aws.String(b.key(dir)), ContinuationToken: token})
			if err != nil {
				return classify(ctx, what, err)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		for _, o := range out.Contents {
			if k, ok := strings.CutPrefix(aws.ToString(o.Key), b.prefix); ok {
				keys[k] = struct{}{}
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			return keys, nil
		}
		if aws.ToString(out.NextContinuationToken) == "" {
			return nil, fmt.Errorf("%s: truncated listing without a continuation token", what)
		}
		token = out.NextContinuationToken
	}
}

// head reports whether key is present: a HEAD request.
func (b *Bucket) head(ctx context.Context, key string) (bool, error) {
	what := "HEAD " + b.String() + key
	found := false
	err := b.retry(ctx, what, func(ctx context.Context) error {
		_, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: aws.String(b.key(key))})
		if err != nil {
			return classifyRead(ctx, what, key, err)
		}
		found = true
		return nil
	})
	if errors.Is(err, layout.ErrNotFound) {
		return false, nil
	}
	return found, err
}

// Put implements layout.Target: a PUT with If-None-Match: *, so that an
// object already there is left alone (412). A server that does not
// implement conditional writes gets a HEAD, then a plain PUT (objects are
// immutable: a concurrent writer writes the same bytes).
func (b *Bucket) Put(ctx context.Context, key string, data []byte) error {
	if !b.noConditional.Load() {
		err := b.put(ctx, key, data, nil, aws.String("*"))
		if errors.Is(err, errPrecondition) {
			return nil
		}
		if !errors.Is(err, errNotImplemented) {
			return err
		}
		b.conditionalUnsupported(err)
	}
	if ok, err := b.head(ctx, key); err != nil || ok {
		return err
	}
	return b.put(ctx, key, data, nil, nil)
}

// conditionalUnsupported records that the server refused a conditional
// write, warning once.
func (b *Bucket) conditionalUnsupported(err error) {
	if !b.noConditional.Swap(true) {
		b.opt.Log.Warn("the S3 server does not support conditional writes: concurrent pushes to one prefix may drop each other's roots from the index",
			"bucket", b.String(), "err", err)
	}
}

// put writes object key, with the preconditions given.
func (b *Bucket) put(ctx context.Context, key string, data []byte, ifMatch, ifNoneMatch *string) error {
	what := "PUT " + b.String() + key
	return b.retry(ctx, what, func(ctx context.Context) error {
		_, err := b.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &b.bucket, Key: aws.String(b.key(key)),
			Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
			ContentType:  aws.String(contentType(key)),
			CacheControl: aws.String(cacheControl(key)),
			IfMatch:      ifMatch, IfNoneMatch: ifNoneMatch,
		})
		if err != nil {
			return classify(ctx, what, err)
		}
		return nil
	})
}

// contentType and cacheControl are what a web server or CDN in front of
// the bucket passes on: as `serve http` answers.
func contentType(key string) string {
	if key == layout.IndexKey {
		return "application/json"
	}
	return "application/octet-stream"
}

func cacheControl(key string) string {
	if key == layout.IndexKey {
		return "public, max-age=61"
	}
	return "public, max-age=31536000, immutable"
}

// UpdateIndex implements layout.Target: the index is read with its ETag,
// updated, and written back with If-Match: ETag (If-None-Match: * when
// there was none); if another push replaced it meanwhile (412), it is
// read and updated again, after a backoff with jitter. S3 makes each
// object durable before answering, so the objects written before are.
func (b *Bucket) UpdateIndex(ctx context.Context, update func(old []byte) ([]byte, error)) error {
	wait := b.opt.Backoff
	for attempt := 1; ; attempt++ {
		old, etag, err := b.readIndex(ctx)
		// Without s3:ListBucket, a missing index is a 403 too: a first push
		// to an empty prefix. It is created only if absent; if it is there
		// after all, that PUT fails (412), and so does the push.
		denied := err
		if errors.As(err, new(deniedError)) && !b.noConditional.Load() {
			old, err = nil, nil
		}
		if err != nil {
			return err
		}
		data, err := update(old)
		if err != nil {
			return err
		}
		var ifMatch, ifNoneMatch *string
		switch {
		case b.noConditional.Load():
		case old == nil:
			ifNoneMatch = aws.String("*")
		case etag == "":
			return fmt.Errorf("GET %s%s: the server sent no ETag, so the index cannot be replaced safely", b, layout.IndexKey)
		default:
			ifMatch = aws.String(etag)
		}
		err = b.put(ctx, layout.IndexKey, data, ifMatch, ifNoneMatch)
		if errors.Is(err, errNotImplemented) {
			b.conditionalUnsupported(err)
			continue
		}
		if denied != nil && errors.Is(err, errPrecondition) {
			return fmt.Errorf("%s%s exists, and reading it is forbidden: %w", b, layout.IndexKey, denied)
		}
		if !errors.Is(err, errPrecondition) {
			return err
		}
		if attempt >= b.opt.IndexAttempts {
			return fmt.Errorf("%s%s: replaced by others %d times while this push updated it: %w", b, layout.IndexKey, attempt, err)
		}
		b.opt.Log.Info("the index changed while this push updated it; updating it again", "bucket", b.String(), "attempt", attempt)
		d := wait/2 + rand.N(wait)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return fmt.Errorf("%s%s: %w", b, layout.IndexKey, ctx.Err())
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// readIndex returns the index and its ETag, or nil when there is none.
func (b *Bucket) readIndex(ctx context.Context) ([]byte, string, error) {
	what := "GET " + b.String() + layout.IndexKey
	var data []byte
	var etag string
	err := b.retry(ctx, what, func(ctx context.Context) error {
		resp, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: aws.String(b.key(layout.IndexKey))})
		if err != nil {
			return classify(ctx, what, err)
		}
		defer resp.Body.Close()
		data, err = io.ReadAll(io.LimitReader(resp.Body, layout.MaxIndexSize+1))
		if err != nil {
			return classify(ctx, what, &smithyhttp.RequestSendError{Err: err})
		}
		if len(data) > layout.MaxIndexSize {
			return errPermanent{fmt.Errorf("%w: %s is more than %d bytes", store.ErrCorrupt, what, layout.MaxIndexSize)}
		}
		etag = aws.ToString(resp.ETag)
		return nil
	})
	if errors.Is(err, layout.ErrNotFound) {
		return nil, "", nil
	}
	return data, etag, err
}
