package names

import "testing"

func TestCommandSubjects(t *testing.T) {
	for _, c := range []struct {
		subject string
		org     string
		system  bool
	}{
		{Command(Messaging, "acme", ActionSend), "acme", false},
		{SystemCommand(Messaging, "acme", ActionSend), "acme", true},
		{"chat.sys.messaging.acme", "", false},
		{"chat.evt.conv.acme.c1", "", false},
		{"chat.sys.messaging.acme.send.more", "", false},
		{"xchat.sys.messaging.acme.send", "", false},
	} {
		if got := CommandOrg(c.subject); got != c.org {
			t.Errorf("CommandOrg(%q) = %q, want %q", c.subject, got, c.org)
		}
		if got := IsSystemCommand(c.subject); got != c.system {
			t.Errorf("IsSystemCommand(%q) = %v", c.subject, got)
		}
	}
	if got := SystemCommandWildcard(Messaging, "*"); got != "chat.sys.messaging.*.*" {
		t.Errorf("SystemCommandWildcard = %q", got)
	}
	if got := InboxPrefix("edge"); got != "_INBOX_edge" {
		t.Errorf("InboxPrefix = %q", got)
	}
}
