package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/gobwas/ws"
)

// -mode react: each room's creator sends seedsPerRoom messages, then every
// connection toggles reactions on them at its share of -rate. Connection
// i's k-th command is emoji k%len(reactEmoji) on seed (k/len)%seeds, added
// on its first pass over all pairs and removed on the next, so every
// command is a change (an ack with changed: false counts as a duplicate).
const seedsPerRoom = 4

var reactEmoji = []string{"👍", "❤️", "😂", "🎉", "🙏", "👀", "🔥", "✅"}

// seedMessages sends each room's seed messages and returns their ids.
func seedMessages(members [][]*wsConn, convs []string, cfg *config) ([][]string, error) {
	seeds := make([][]string, len(convs))
	err := parallel(len(convs), 64, func(ri int) error {
		c := members[ri][0]
		for k := range seedsPerRoom {
			id := fmt.Sprintf("p-%d-%d", ri, k) // not "s...": those are the measured commands
			payload, _ := json.Marshal(map[string]any{"id": id, "type": "message:send",
				"data": map[string]any{"conversationId": convs[ri], "content": "react to me", "clientMsgId": id + "-" + cfg.runID}})
			p, err := c.request(id, payload, cfg.timeout)
			if err != nil {
				return fmt.Errorf("seed message:send by %s: %w", c.user, err)
			}
			var reply struct {
				Type string `json:"type"`
				Data struct {
					MessageID string `json:"messageId"`
				} `json:"data"`
			}
			if err := json.Unmarshal(p, &reply); err != nil || reply.Type != "ack" || reply.Data.MessageID == "" {
				return fmt.Errorf("seed message:send by %s: got %s", c.user, p)
			}
			seeds[ri] = append(seeds[ri], reply.Data.MessageID)
		}
		return nil
	})
	return seeds, err
}

// reactKey names one change for the receivers' latency.
func reactKey(user, msg, emoji string, on bool) string {
	return user + "|" + msg + "|" + emoji + "|" + strconv.FormatBool(on)
}

// reactLoop is sendLoop for message:react.
func (c *wsConn) reactLoop(conv string, seeds []string, cfg *config, start, end time.Time, offset, interval float64) {
	st := c.r.st
	buf := make([]byte, 0, 256)
	pairs := len(reactEmoji) * len(seeds)
	pace(st, start, end, offset, interval, func(k int, now time.Time) bool {
		emoji, msg, on := reactEmoji[k%len(reactEmoji)], seeds[(k/len(reactEmoji))%len(seeds)], (k/pairs)%2 == 0
		ts := now.UnixNano()
		c.r.reacted.Store(reactKey(c.user, msg, emoji, on), ts)
		buf = append(buf[:0], `{"id":"s`...)
		buf = strconv.AppendInt(buf, ts, 10)
		buf = append(buf, `","type":"message:react","data":{"conversationId":"`...)
		buf = append(buf, conv...)
		buf = append(buf, `","messageId":"`...)
		buf = append(buf, msg...)
		buf = append(buf, `","emoji":"`...)
		buf = append(buf, emoji...)
		buf = append(buf, `","on":`...)
		buf = strconv.AppendBool(buf, on)
		buf = append(buf, `}}`...)
		if err := c.writeFrame(ws.OpText, buf); err != nil {
			st.writeErrs.Add(1)
			return false
		}
		st.sent.Add(1)
		return true
	})
}

// reactedEvent counts a message:reacted delivery and its latency from the
// command that made it.
func (r *run) reactedEvent(c *wsConn, p []byte) {
	now := time.Now().UnixNano()
	c.delivered.Add(1)
	r.st.delivered.Add(1)
	var ev struct {
		Data struct {
			UserID    string `json:"userId"`
			MessageID string `json:"messageId"`
			Emoji     string `json:"emoji"`
			On        bool   `json:"on"`
		} `json:"data"`
	}
	if json.Unmarshal(p, &ev) != nil {
		r.st.foreign.Add(1)
		return
	}
	d := ev.Data
	if ts, ok := r.reacted.Load(reactKey(d.UserID, d.MessageID, d.Emoji, d.On)); ok {
		r.st.e2eLat.Record(now - ts.(int64))
	} else {
		r.st.foreign.Add(1)
	}
	c.sequence(p)
}
