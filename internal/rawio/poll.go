package rawio

import (
	"runtime"
	"time"
)

// PollFor bounds the polling of Recv and RecvUnless: a few chunks' copy
// time.
const PollFor = time.Millisecond

// Recv receives from ch as a plain receive does, but polls ch for up to
// PollFor before it blocks. It is for the goroutines of a page copy, which
// have a P each and hand chunks to each other every 50-150 µs: one that
// blocked would park its thread, to be woken (a futex wake, an interrupt
// to the other CPU, and the runtime's attempts to steal the woken
// goroutine, each a short sleep) microseconds later; on a paravirtualised
// guest those context switches cost more than the wait. Between polls it
// yields the P to whatever else is runnable.
//
// Not for a goroutine locked to its thread: its yield hands the P away
// and parks the thread, the very cost Recv avoids.
func Recv[T any](ch <-chan T) (T, bool) {
	if v, ok, got := poll(ch, nil); got {
		return v, ok
	}
	v, ok := <-ch
	return v, ok
}

// RecvUnless is Recv that gives up once stop is closed: ok is false then
// as for a closed ch.
func RecvUnless[T any](ch <-chan T, stop <-chan struct{}) (v T, ok bool) {
	if v, ok, got := poll(ch, stop); got {
		return v, ok
	}
	select {
	case v, ok = <-ch:
		return v, ok
	case <-stop:
		return v, false
	}
}

// poll tries ch (and stop) until PollFor has passed; got says whether it
// got an answer.
func poll[T any](ch <-chan T, stop <-chan struct{}) (v T, ok, got bool) {
	var deadline time.Time
	for i := 0; ; i++ {
		// One channel a select: a select of one case and a default is the
		// runtime's lock-free fast path, one of two cases locks both.
		select {
		case v, ok = <-ch:
			return v, ok, true
		default:
		}
		if stop != nil {
			select {
			case <-stop:
				return v, false, true
			default:
			}
		}
		if i%64 == 0 { // the clock costs more than a poll
			now := time.Now()
			if i == 0 {
				deadline = now.Add(PollFor)
			} else if now.After(deadline) {
				return v, false, false
			}
		}
		runtime.Gosched()
	}
}
