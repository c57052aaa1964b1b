package flight

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestDoKeepsContextsApart: a call ended by its caller's cancellation
// fails that caller alone, a caller waiting on it calls fn itself, and a
// waiting caller whose own deadline passes stops waiting. (That joined
// calls run fn once is lru's TestLoadCoalescesAndSkipsErrors.)
func TestDoKeepsContextsApart(t *testing.T) {
	var g Group[string, int]
	ctx := context.Background()
	if v, err := g.Do(ctx, "k", func() (int, error) { return 42, nil }); v != 42 || err != nil {
		t.Errorf("got %d, %v", v, err)
	}

	first, cancel := context.WithCancel(ctx)
	started := make(chan struct{})
	res := make(chan error, 1)
	go func() {
		_, err := g.Do(first, "c", func() (int, error) { close(started); <-first.Done(); return 0, first.Err() })
		res <- err
	}()
	<-started
	joined := make(chan int, 1)
	go func() {
		v, err := g.Do(ctx, "c", func() (int, error) { return 7, nil })
		if err != nil {
			t.Errorf("the joining caller got %v", err)
		}
		joined <- v
	}()
	short, stop := context.WithTimeout(ctx, 20*time.Millisecond)
	defer stop()
	if _, err := g.Do(short, "c", func() (int, error) { return 0, errors.New("not called") }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a waiting caller past its deadline: %v", err)
	}
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Errorf("the canceled caller: %v", err)
	}
	select {
	case v := <-joined:
		if v != 7 {
			t.Errorf("the joining caller: %d, want its own call's 7", v)
		}
	case <-time.After(10 * time.Second):
		t.Error("the joining caller did not return")
	}
}
