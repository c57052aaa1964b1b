package lru

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var ctx = context.Background()

func TestEvictsByBytes(t *testing.T) {
	c := New[int, string](10)
	for i := range 5 {
		if _, err := c.Load(ctx, i, func() (string, int64, error) { return "abcd", 4, nil }); err != nil {
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
	c.Load(ctx, 99, func() (string, int64, error) { return "huge", 11, nil })
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
			v, err := c.Load(ctx, "k", func() (int, int64, error) {
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
	if _, err := c.Load(ctx, "bad", func() (int, int64, error) { return 0, 1, boom }); err != boom {
		t.Fatal(err)
	}
	if _, ok := c.Get("bad"); ok {
		t.Fatal("error cached")
	}
}

// TestLoadCancelIsTheCallersOwn: a load ended by its caller's
// cancellation fails that caller alone; a caller waiting on it loads
// again, and a waiting caller whose own context ends stops waiting.
func TestLoadCancelIsTheCallersOwn(t *testing.T) {
	c := New[string, int](100)
	first, cancel := context.WithCancel(ctx)
	started := make(chan struct{})
	res := make(chan error, 1)
	go func() {
		_, err := c.Load(first, "k", func() (int, int64, error) {
			close(started)
			<-first.Done()
			return 0, 0, first.Err()
		})
		res <- err
	}()
	<-started
	joined := make(chan int, 1)
	go func() {
		v, err := c.Load(ctx, "k", func() (int, int64, error) { return 7, 1, nil })
		if err != nil {
			t.Errorf("the joining caller got %v", err)
		}
		joined <- v
	}()
	short, stop := context.WithTimeout(ctx, 20*time.Millisecond)
	defer stop()
	if _, err := c.Load(short, "k", func() (int, int64, error) { return 0, 0, errors.New("not called") }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a waiting caller past its deadline: %v", err)
	}
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Errorf("the canceled caller: %v", err)
	}
	if v := <-joined; v != 7 {
		t.Errorf("the joining caller: %d, want its own load's 7", v)
	}
}
