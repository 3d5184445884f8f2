package standalone

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// attachmentJSON is one attachment of a message:new.
type attachmentJSON struct {
	FileID      string `json:"fileId"`
	Name        string `json:"name"`
	Size        uint64 `json:"size"`
	ContentType string `json:"contentType"`
}

// withAttachments is the part of a message:new the files tests read.
type withAttachments struct {
	MessageID   string           `json:"messageId"`
	Content     string           `json:"content"`
	Attachments []attachmentJSON `json:"attachments"`
}

// eventually polls a download until it answers want, for up to wait.
func (f *fixture) eventually(tok, fileID string, want int) {
	f.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		resp := f.getFile(tok, fileID, nil)
		resp.Body.Close()
		if resp.StatusCode == want {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("GET /files/%s: %d, want %d within %v", fileID, resp.StatusCode, want, wait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A message names files uploaded by its sender to its conversation: the
// live message:new and history carry {fileId, name, size, contentType};
// someone else's file, a file of another conversation, a file attached to
// another message already, an unknown id are not_found; a resend is a
// duplicate, not a second attachment; deleting the message removes its
// files.
func TestFilesAttachments(t *testing.T) {
	f := start(t)
	alice, bob := f.dial("acme", "alice"), f.dial("acme", "bob")
	conv, other := alice.create("bob"), alice.create()
	bob.join(conv)
	ta, tb := token("acme", "alice"), token("acme", "bob")
	f1 := f.upload(ta, conv, "one.png", "image/png", "png bytes")
	f2 := f.upload(ta, conv, "two.txt", "text/plain", "two")
	f3 := f.upload(ta, other, "three.txt", "", "three")
	fb := f.upload(tb, conv, "bob.txt", "", "bob's")

	send := map[string]any{"conversationId": conv, "content": "", "clientMsgId": "att-1", "attachments": []string{f1.FileID, f2.FileID}}
	ack := decode[sendAck](t, alice.do("message:send", send))
	ev := decode[withAttachments](t, bob.event("message:new").Data)
	want := []attachmentJSON{{f1.FileID, "one.png", f1.Size, "image/png"}, {f2.FileID, "two.txt", f2.Size, "text/plain"}}
	if ev.MessageID != ack.MessageID || ev.Content != "" || !sameAttachments(ev.Attachments, want) {
		t.Fatalf("message:new %+v, want attachments %+v", ev, want)
	}
	type historyAck struct {
		Events []struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		} `json:"events"`
	}
	hist := decode[historyAck](t, bob.do("conversation:history", map[string]any{"conversationId": conv}))
	if n := len(hist.Events); n == 0 || !sameAttachments(decode[withAttachments](t, hist.Events[n-1].Data).Attachments, want) {
		t.Fatalf("history %+v", hist)
	}
	// A resend with the same clientMsgId is the same message.
	if again := decode[sendAck](t, alice.do("message:send", send)); !again.Duplicate || again.MessageID != ack.MessageID {
		t.Fatalf("resend: %+v", again)
	}

	t.Run("not found", func(t *testing.T) {
		alice := alice.with(t)
		for i, files := range [][]string{{fb.FileID}, {f3.FileID}, {f1.FileID}, {"01NOSUCHFILE"}} {
			alice.fails("message:send", map[string]any{"conversationId": conv, "content": "x", "clientMsgId": "nf-" + string(rune('a'+i)), "attachments": files},
				"error", "not_found")
		}
		// The refused sends claimed nothing: bob's own file attaches.
		bob.with(t).do("message:send", map[string]any{"conversationId": conv, "content": "mine", "clientMsgId": "b-1", "attachments": []string{fb.FileID}})
	})
	t.Run("validation", func(t *testing.T) {
		alice := alice.with(t)
		eleven := make([]string, 11)
		for i := range eleven {
			eleven[i] = f2.FileID
		}
		for _, atts := range [][]string{eleven, {"bad id"}} {
			alice.fails("message:send", map[string]any{"conversationId": conv, "content": "x", "clientMsgId": "v", "attachments": atts}, "validation-error", "validation_failed")
		}
		alice.fails("message:send", map[string]any{"conversationId": conv, "content": "", "clientMsgId": "v"}, "validation-error", "validation_failed")
	})
	t.Run("delete removes the files", func(t *testing.T) {
		status(t, f.getFile(tb, f1.FileID, nil), http.StatusOK)
		alice.with(t).do("message:delete", map[string]any{"conversationId": conv, "messageId": ack.MessageID})
		f.with(t).eventually(tb, f1.FileID, http.StatusNotFound)
		f.with(t).eventually(ta, f2.FileID, http.StatusNotFound)
		status(t, f.getFile(tb, fb.FileID, nil), http.StatusOK) // another message's
	})
}

func sameAttachments(got, want []attachmentJSON) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// Uploads never attached are removed once FileUnattachedTTL has passed
// (here 1 s, swept every 200 ms); an attached one stays, and an expired
// upload can no longer be attached.
func TestFilesSweeper(t *testing.T) {
	f := start(t, func(c *Config) {
		c.Messaging.FileUnattachedTTL = time.Second
		c.Messaging.FileSweepInterval = 200 * time.Millisecond
	})
	alice := f.dial("acme", "alice")
	conv := alice.create()
	ta := token("acme", "alice")
	loose := f.upload(ta, conv, "loose", "", "never attached")
	kept := f.upload(ta, conv, "kept", "", "attached")
	alice.do("message:send", map[string]any{"conversationId": conv, "content": "x", "clientMsgId": "s-1", "attachments": []string{kept.FileID}})
	late := f.upload(ta, conv, "late", "", "attached too late")
	f.eventually(ta, loose.FileID, http.StatusNotFound)
	time.Sleep(time.Second) // past late's TTL too
	alice.fails("message:send", map[string]any{"conversationId": conv, "content": "x", "clientMsgId": "s-2", "attachments": []string{late.FileID}}, "error", "not_found")
	f.eventually(ta, late.FileID, http.StatusNotFound)
	status(t, f.getFile(ta, kept.FileID, nil), http.StatusOK)
}
