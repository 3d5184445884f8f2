package main

import (
	"maps"
	"testing"
	"time"
)

// TestTally checks the loss, duplicate and error accounting on small
// ledgers built by hand.
func TestTally(t *testing.T) {
	at := time.Unix(1000, 0)
	members := map[int][]int{0: {0, 1}}
	type send struct {
		cmid    string
		answers []string
		acks    map[string]uint64 // messageId -> seq
	}
	type delivery struct {
		slot   int
		seq    uint64
		pushed bool
	}
	tests := []struct {
		name       string
		sends      []send
		history    []histRec
		deliveries []delivery
		want       tally
	}{
		{
			name:       "clean",
			sends:      []send{{cmid: "a", acks: map[string]uint64{"m1": 10}}, {cmid: "b", acks: map[string]uint64{"m2": 11}}},
			history:    []histRec{{seq: 10, messageID: "m1", clientMsgID: "a"}, {seq: 11, messageID: "m2", clientMsgID: "b"}},
			deliveries: []delivery{{0, 10, true}, {1, 10, true}, {0, 11, true}, {1, 11, false}},
			want:       tally{Sends: 2, Acked: 2},
		},
		{
			name:       "acked but not in history is lost",
			sends:      []send{{cmid: "a", acks: map[string]uint64{"m1": 10}}},
			deliveries: []delivery{{0, 10, true}, {1, 10, true}},
			want:       tally{Sends: 1, Acked: 1, Lost: 1},
		},
		{
			name:       "in history under another seq is lost",
			sends:      []send{{cmid: "a", acks: map[string]uint64{"m1": 10}}},
			history:    []histRec{{seq: 12, messageID: "m1", clientMsgID: "a"}},
			deliveries: []delivery{{0, 10, true}, {1, 10, true}},
			want:       tally{Sends: 1, Acked: 1, Lost: 1},
		},
		{
			name:       "one clientMsgId stored twice",
			sends:      []send{{cmid: "a", answers: []string{answerTimeout}, acks: map[string]uint64{"m1": 10}}},
			history:    []histRec{{seq: 10, messageID: "m1", clientMsgID: "a"}, {seq: 11, messageID: "m2", clientMsgID: "a"}},
			deliveries: []delivery{{0, 10, true}, {1, 10, true}},
			want:       tally{Sends: 1, Acked: 1, DupStored: 1, SendErrors: map[string]int{answerTimeout: 1}},
		},
		{
			name:       "acked twice with two message ids",
			sends:      []send{{cmid: "a", acks: map[string]uint64{"m1": 10, "m2": 11}}},
			history:    []histRec{{seq: 10, messageID: "m1", clientMsgID: "a"}, {seq: 11, messageID: "m2", clientMsgID: "a"}},
			deliveries: []delivery{{0, 10, true}, {1, 10, true}, {0, 11, true}, {1, 11, true}},
			want:       tally{Sends: 1, Acked: 1, DupStored: 2},
		},
		{
			name:       "a stored send answered internal is a bad answer",
			sends:      []send{{cmid: "a", answers: []string{"internal"}, acks: map[string]uint64{"m1": 10}}},
			history:    []histRec{{seq: 10, messageID: "m1", clientMsgID: "a"}},
			deliveries: []delivery{{0, 10, true}, {1, 10, true}},
			want:       tally{Sends: 1, Acked: 1, BadAnswers: 1, SendErrors: map[string]int{"internal": 1}},
		},
		{
			name:       "unavailable, a timeout and a lost socket are honest",
			sends:      []send{{cmid: "a", answers: []string{"unavailable", answerTimeout, answerConnLost}, acks: map[string]uint64{"m1": 10}}},
			history:    []histRec{{seq: 10, messageID: "m1", clientMsgID: "a"}},
			deliveries: []delivery{{0, 10, true}, {1, 10, true}},
			want:       tally{Sends: 1, Acked: 1, SendErrors: map[string]int{"unavailable": 1, answerTimeout: 1, answerConnLost: 1}},
		},
		{
			name:  "internal for a send never stored is not a bad answer",
			sends: []send{{cmid: "a", answers: []string{"internal"}}},
			want:  tally{Sends: 1, Unacked: 1, SendErrors: map[string]int{"internal": 1}},
		},
		{
			name:       "a member that never got an acked message",
			sends:      []send{{cmid: "a", acks: map[string]uint64{"m1": 10}}},
			history:    []histRec{{seq: 10, messageID: "m1", clientMsgID: "a"}},
			deliveries: []delivery{{0, 10, true}},
			want:       tally{Sends: 1, Acked: 1, Undelivered: 1},
		},
		{
			name:       "pushed twice is a duplicate; pushed after a gap fill is not",
			sends:      []send{{cmid: "a", acks: map[string]uint64{"m1": 10}}},
			history:    []histRec{{seq: 10, messageID: "m1", clientMsgID: "a"}},
			deliveries: []delivery{{0, 10, true}, {0, 10, true}, {1, 10, false}, {1, 10, true}},
			want:       tally{Sends: 1, Acked: 1, DupPushed: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLedger()
			for _, s := range tt.sends {
				l.sendStart(s.cmid, 0, at)
				for _, a := range s.answers {
					l.sendAnswer(s.cmid, a)
				}
				for id, seq := range s.acks {
					l.sendAck(s.cmid, id, seq, false, at.Add(time.Second))
				}
			}
			for _, d := range tt.deliveries {
				l.deliver(d.slot, d.seq, d.pushed, !d.pushed)
			}
			got := l.tally(tt.history, members)
			want := tt.want
			if want.SendErrors == nil {
				want.SendErrors = map[string]int{}
			}
			if got.Sends != want.Sends || got.Acked != want.Acked || got.Unacked != want.Unacked ||
				got.Lost != want.Lost || got.DupStored != want.DupStored || got.DupPushed != want.DupPushed ||
				got.Undelivered != want.Undelivered || got.BadAnswers != want.BadAnswers ||
				!maps.Equal(got.SendErrors, want.SendErrors) {
				t.Errorf("tally = %+v\nwant    %+v", got, want)
			}
		})
	}
}

// TestVerdict checks which results fail a phase.
func TestVerdict(t *testing.T) {
	tests := []struct {
		name string
		r    phaseResult
		fail bool
	}{
		{"clean", phaseResult{Bound: 10 * time.Second, Tally: tally{Acked: 5, Longest: 9 * time.Second}}, false},
		{"lost", phaseResult{Tally: tally{Acked: 5, Lost: 1}}, true},
		{"dup", phaseResult{Tally: tally{Acked: 5, DupPushed: 1}}, true},
		{"bad answer", phaseResult{Tally: tally{Acked: 5, BadAnswers: 1}}, true},
		{"never acked", phaseResult{Tally: tally{Unacked: 1}}, true},
		{"over the bound", phaseResult{Bound: 10 * time.Second, Tally: tally{Acked: 5, Longest: 11 * time.Second}}, true},
	}
	for _, tt := range tests {
		if got := len(verdict(tt.r)) > 0; got != tt.fail {
			t.Errorf("%s: fails = %v, want %v (%v)", tt.name, got, tt.fail, verdict(tt.r))
		}
	}
}
