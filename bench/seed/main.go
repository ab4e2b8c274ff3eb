// SPDX-License-Identifier: MIT
//
// main.go - the seed peer's driver (bench/seed/compare.c runs it): read the
// events file compare.c wrote, ingest every event into a fresh LiveTrie
// with -threads goroutines (each takes a contiguous share), optionally with
// a reader taking SnapshotJSON every -reader-ms, and print one line:
//
//	seed threads=T reader_ms=R events=N secs=S meps=M stalls=K stalls_per_s=X snaps=J total=V
//
// A stall is a batch of -batch events whose ingest took more than -stall-us
// (what an ingest thread feeding a ring buffer cannot afford: ior's tracer
// drops events while it waits).  total is the trie's sum after the run,
// which compare.c checks against the events' sum (nothing lost).
//
// Events file (little endian), written by compare.c:
//
//	"STSEED1\n" u32 nstacks
//	nstacks x { u32 depth; depth x { u32 len; len bytes } }
//	u64 nevents; nevents x u32 stack index; nevents x u32 value
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

type events struct {
	stacks [][]string
	idx    []uint32
	val    []uint32
}

func readEvents(path string) (*events, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	magic := make([]byte, 8)
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != "STSEED1\n" {
		return nil, fmt.Errorf("%s: not a seed events file", path)
	}
	var u32 func() uint32
	var rerr error
	u32 = func() uint32 {
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil && rerr == nil {
			rerr = err
		}
		return binary.LittleEndian.Uint32(b[:])
	}
	ev := &events{}
	ns := u32()
	for i := uint32(0); i < ns && rerr == nil; i++ {
		d := u32()
		st := make([]string, 0, d)
		for j := uint32(0); j < d && rerr == nil; j++ {
			b := make([]byte, u32())
			if _, err := io.ReadFull(r, b); err != nil {
				rerr = err
			}
			st = append(st, string(b))
		}
		ev.stacks = append(ev.stacks, st)
	}
	var b8 [8]byte
	if _, err := io.ReadFull(r, b8[:]); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint64(b8[:])
	buf := make([]byte, 4*n)
	ev.idx = make([]uint32, n)
	ev.val = make([]uint32, n)
	for _, dst := range [][]uint32{ev.idx, ev.val} {
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		for i := range dst {
			dst[i] = binary.LittleEndian.Uint32(buf[4*i:])
		}
	}
	if rerr != nil {
		return nil, rerr
	}
	for _, i := range ev.idx {
		if int(i) >= len(ev.stacks) {
			return nil, fmt.Errorf("%s: stack index %d out of range", path, i)
		}
	}
	return ev, nil
}

func main() {
	path := flag.String("events", "", "events file written by compare.c")
	threads := flag.Int("threads", 1, "ingesting goroutines")
	readerMs := flag.Int("reader-ms", 0, "SnapshotJSON every this many ms (0: no reader)")
	batch := flag.Int("batch", 1024, "events per timed batch")
	stallUs := flag.Int("stall-us", 1000, "a batch slower than this is a stall")
	flag.Parse()
	ev, err := readEvents(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(2)
	}
	lt := NewLiveTrie()
	n := len(ev.idx)
	stallLimit := time.Duration(*stallUs) * time.Microsecond

	stop := make(chan struct{})
	var rwg sync.WaitGroup
	snaps := 0
	if *readerMs > 0 {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			t := time.NewTicker(time.Duration(*readerMs) * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					lt.SnapshotJSON()
					snaps++
				}
			}
		}()
	}

	stalls := make([]int, *threads)
	var wg sync.WaitGroup
	start := time.Now()
	for t := 0; t < *threads; t++ {
		lo, hi := n*t / *threads, n*(t+1) / *threads
		wg.Add(1)
		go func(t, lo, hi int) {
			defer wg.Done()
			for b := lo; b < hi; b += *batch {
				e := b + *batch
				if e > hi {
					e = hi
				}
				t0 := time.Now()
				for i := b; i < e; i++ {
					lt.Ingest(ev.stacks[ev.idx[i]], uint64(ev.val[i]))
				}
				if time.Since(t0) > stallLimit {
					stalls[t]++
				}
			}
		}(t, lo, hi)
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	close(stop)
	rwg.Wait()
	k := 0
	for _, s := range stalls {
		k += s
	}
	fmt.Printf("seed threads=%d reader_ms=%d events=%d secs=%.4f meps=%.3f stalls=%d stalls_per_s=%.2f snaps=%d total=%d\n",
		*threads, *readerMs, n, secs, float64(n)/secs/1e6, k, float64(k)/secs, snaps, lt.Total())
}
