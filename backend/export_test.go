package backend_test

import "github.com/spraydryfs/spraydryfs/backend/hash"

func backendHash(b []byte) hash.Hash { return hash.Sum(b) }
