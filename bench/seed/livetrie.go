// SPDX-License-Identifier: MIT
//
// livetrie.go - the design shardtrie replaces, written here as a benchmark
// peer: the seed project's LiveTrie (../shared/seeds/ior-livetrie.go.txt),
// reduced to what ingest and a live reader cost.
//
// Design kept from the seed, on purpose (it is what we measure against):
//   - one sync.RWMutex over the whole trie: every ingest takes it for
//     writing, a snapshot takes it for reading while it walks the tree;
//   - one heap node per frame, children in a Go map keyed by name plus a
//     slice in insertion order;
//   - a version counter bumped on every ingest (atomic);
//   - a snapshot is the {n,v,t,c} tree, children sorted by name, nodes under
//     liveTrieMinFraction of the root pruned, built under the read lock and
//     then marshalled to JSON (with the seed's one-entry cache by version).
//
// Left out: the event decoding the seed does before taking the lock
// (eventPairToRecord, buildFrames): the peer is fed frames already split,
// as shardtrie's writers are in the same run.
package main

import (
	"encoding/json"
	"sort"
	"sync"
	"sync/atomic"
)

const liveTrieMinFraction = 0.001

type trieNode struct {
	name     string
	value    uint64
	children []*trieNode
	childMap map[string]*trieNode
}

type trieSnapshot struct {
	Name     string          `json:"n"`
	Value    uint64          `json:"v"`
	Total    uint64          `json:"t"`
	Children []*trieSnapshot `json:"c,omitempty"`
}

type LiveTrie struct {
	mu       sync.RWMutex
	root     *trieNode
	maxDepth int
	version  atomic.Uint64

	cacheMu      sync.Mutex
	cacheVersion uint64
	cacheJSON    []byte
}

func NewLiveTrie() *LiveTrie {
	return &LiveTrie{root: &trieNode{childMap: map[string]*trieNode{}}}
}

// Ingest adds value at the stack frames (root first), as the seed's Ingest
// does once the event is decoded: under the write lock.
func (lt *LiveTrie) Ingest(frames []string, value uint64) {
	lt.mu.Lock()
	node := lt.root
	for _, f := range frames {
		child, ok := node.childMap[f]
		if !ok {
			child = &trieNode{name: f, childMap: map[string]*trieNode{}}
			node.children = append(node.children, child)
			node.childMap[f] = child
		}
		node = child
	}
	node.value += value
	if len(frames) > lt.maxDepth {
		lt.maxDepth = len(frames)
	}
	lt.version.Add(1)
	lt.mu.Unlock()
}

// Total is the sum of every node's value (the check that nothing was lost).
func (lt *LiveTrie) Total() uint64 {
	lt.mu.RLock()
	defer lt.mu.RUnlock()
	return subtreeTotal(lt.root)
}

// SnapshotJSON is the seed's reader: the pruned, sorted tree built under the
// read lock, then marshalled; cached while the version does not move.
func (lt *LiveTrie) SnapshotJSON() ([]byte, uint64) {
	v := lt.version.Load()
	lt.cacheMu.Lock()
	if lt.cacheVersion == v && lt.cacheJSON != nil {
		out := append([]byte(nil), lt.cacheJSON...)
		lt.cacheMu.Unlock()
		return out, v
	}
	lt.cacheMu.Unlock()

	lt.mu.RLock()
	v = lt.version.Load()
	rootTotal := subtreeTotal(lt.root)
	snap, _ := buildSnapshot(lt.root, 0, rootTotal)
	lt.mu.RUnlock()

	payload, err := json.Marshal(snap)
	if err != nil {
		return []byte(`{}`), v
	}
	lt.cacheMu.Lock()
	lt.cacheVersion = v
	lt.cacheJSON = append([]byte(nil), payload...)
	lt.cacheMu.Unlock()
	return payload, v
}

func subtreeTotal(n *trieNode) uint64 {
	t := n.value
	for _, c := range n.children {
		t += subtreeTotal(c)
	}
	return t
}

func buildSnapshot(n *trieNode, depth int, rootTotal uint64) (*trieSnapshot, uint64) {
	total := n.value
	children := append([]*trieNode(nil), n.children...)
	sort.Slice(children, func(i, j int) bool { return children[i].name < children[j].name })
	kids := make([]*trieSnapshot, 0, len(children))
	for _, c := range children {
		s, t := buildSnapshot(c, depth+1, rootTotal)
		total += t
		if s != nil {
			kids = append(kids, s)
		}
	}
	if depth > 0 && rootTotal > 0 && float64(total)/float64(rootTotal) < liveTrieMinFraction {
		return nil, total
	}
	s := &trieSnapshot{Name: n.name, Value: n.value, Total: total}
	if len(kids) > 0 {
		s.Children = kids
	}
	return s, total
}
