package main

import (
	"path/filepath"
	"testing"
)

// TestS3URLErrors: a malformed s3:// URL is a usage error (exit 2, one
// line) for reading commands and for push, before any request.
func TestS3URLErrors(t *testing.T) {
	st := filepath.Join(t.TempDir(), "s.sdfs")
	wantFail(t, cli(t, "-s", "s3://Bad_Bucket/p", "roots"), 2, "is not a bucket name")
	wantFail(t, cli(t, "-s", "s3://bucket/p?versionId=1", "ls", "a@1"), 2, "only s3://BUCKET/PREFIX")
	wantFail(t, cli(t, "-s", "s3://bucket/a//b", "roots"), 2, "empty, . or .. part")
	wantFail(t, cli(t, "-s", st, "push", "s3://key:secret@bucket/p"), 2, "only s3://BUCKET/PREFIX")
	wantFail(t, cli(t, "-s", st, "push", "http://host/p"), 2, "store file or s3://BUCKET/PREFIX")
}
