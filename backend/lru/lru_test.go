package lru

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

func TestEvictsByBytes(t *testing.T) {
	c := New[int, string](10)
	for i := range 5 {
		if _, err := c.Load(i, func() (string, int64, error) { return "abcd", 4, nil }); err != nil {
			t.Fatal(err)
		}
	}
	if c.Used() != 8 {
		t.Fatalf("used %d, want 8", c.Used())
	}
	if _, ok := c.Get(0); ok {
		t.Fatal("oldest entry kept")
	}
	if _, ok := c.Get(4); !ok {
		t.Fatal("newest entry dropped")
	}
	c.Load(99, func() (string, int64, error) { return "huge", 11, nil })
	if _, ok := c.Get(99); ok {
		t.Fatal("entry larger than the cache kept")
	}
	c.Purge()
	if _, ok := c.Get(4); ok || c.Used() != 0 {
		t.Fatal("purge left entries")
	}
}

func TestLoadCoalescesAndSkipsErrors(t *testing.T) {
	c := New[string, int](100)
	var calls atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := c.Load("k", func() (int, int64, error) {
				calls.Add(1)
				<-release
				return 42, 1, nil
			})
			if err != nil || v != 42 {
				t.Errorf("got %d %v", v, err)
			}
		}()
	}
	for calls.Load() == 0 {
	}
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("load ran %d times", n)
	}
	boom := errors.New("boom")
	if _, err := c.Load("bad", func() (int, int64, error) { return 0, 1, boom }); err != boom {
		t.Fatal(err)
	}
	if _, ok := c.Get("bad"); ok {
		t.Fatal("error cached")
	}
}
