package files

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/kit/testkit/natstest"
)

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"", "a.txt", "résumé 1.pdf", strings.Repeat("é", 127), "a b"} {
		if why := CheckName(ok); why != "" {
			t.Errorf("%q refused: %s", ok, why)
		}
	}
	for _, bad := range []string{"a/b", `a\b`, "a\x00", "a\x7f", "a\u0085", "\xff", strings.Repeat("x", 256)} {
		if CheckName(bad) == "" {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestContentType(t *testing.T) {
	for in, want := range map[string]string{
		"":                           DefaultContentType,
		"image/PNG":                  "image/png",
		"text/html; charset=UTF-8":   "text/html; charset=UTF-8",
		"application/json;charset=x": "application/json; charset=x",
	} {
		if got, why := ContentType(in); got != want || why != "" {
			t.Errorf("%q: %q %q, want %q", in, got, why, want)
		}
	}
	for _, bad := range []string{"text", "not a type", "a/b; =x", "a/" + strings.Repeat("b", 300)} {
		if _, why := ContentType(bad); why == "" {
			t.Errorf("%q accepted", bad)
		}
	}
	if typ, ok := Inline("image/webp; q=1"); !ok || typ != "image/webp" {
		t.Errorf("webp: %q %v", typ, ok)
	}
	for _, no := range []string{"image/svg+xml", "text/html", "application/octet-stream"} {
		if _, ok := Inline(no); ok {
			t.Errorf("%s inline", no)
		}
	}
}

// setup is a bucket on a fresh server, and a js and nc on it.
func setup(t *testing.T) (jetstream.JetStream, *Upload) {
	t.Helper()
	nc := natstest.Conn(t, natstest.Server(t))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := natsx.ObjectStore(context.Background(), js, Config(1, 64<<20, time.Hour), natsx.Update); err != nil {
		t.Fatal(err)
	}
	return js, &Upload{Org: "acme", ID: NewID(), Conversation: "c1", Uploader: "alice", Name: "n", ContentType: "text/plain", Created: time.Now()}
}

// A file put in chunks reads back whole and by ranges across chunk
// boundaries, with its sha256; nats.go's object store reads it too; the
// claim is a compare-and-set; a delete loses to a claim made after its
// read, and a delete purges the chunks.
func TestPutReadClaimDelete(t *testing.T) {
	js, up := setup(t)
	nc := js.Conn()
	ctx := context.Background()
	var b strings.Builder
	for i := range 3*ChunkSize + 17 {
		b.WriteByte(byte(i % 251))
	}
	content := b.String()
	f, err := Put(ctx, js, nc, *up, strings.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(content))
	if f.Size != uint64(len(content)) || f.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("put %+v", f)
	}
	got, err := Lookup(ctx, nc, "acme", up.ID)
	if err != nil || got.SHA256 != f.SHA256 || got.Conversation != "c1" || got.Uploader != "alice" {
		t.Fatalf("lookup %+v %v", got, err)
	}
	if _, err := Lookup(ctx, nc, "other", up.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another org's lookup: %v", err)
	}
	for _, r := range [][2]uint64{{0, f.Size}, {ChunkSize - 1, 2}, {ChunkSize + 5, 2*ChunkSize + 12}, {f.Size - 1, 1}} {
		b, err := io.ReadAll(NewReader(ctx, nc, got, r[0], r[1]))
		if err != nil || string(b) != content[r[0]:r[0]+r[1]] {
			t.Fatalf("range %v: %d bytes, %v", r, len(b), err)
		}
	}
	obs, err := js.ObjectStore(ctx, "chat_files")
	if err != nil {
		t.Fatal(err)
	}
	if whole, err := obs.GetBytes(ctx, "acme."+up.ID); err != nil || string(whole) != content {
		t.Fatalf("object store Get: %d bytes, %v", len(whole), err)
	}

	stale := *got
	if err := SetAttached(ctx, js, got, Claim("alice", "m1")); err != nil {
		t.Fatal(err)
	}
	if err := SetAttached(ctx, js, &stale, Claim("alice", "m2")); !errors.Is(err, ErrChanged) {
		t.Fatalf("second claim from a stale read: %v", err)
	}
	if err := Delete(ctx, js, nc, &stale); !errors.Is(err, ErrChanged) {
		t.Fatalf("delete from a stale read: %v", err)
	}
	now, _ := Lookup(ctx, nc, "acme", up.ID)
	if now.Attached != Claim("alice", "m1") {
		t.Fatalf("attached %q", now.Attached)
	}
	if err := Delete(ctx, js, nc, now); err != nil {
		t.Fatal(err)
	}
	if _, err := Lookup(ctx, nc, "acme", up.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	st, _ := js.Stream(ctx, Stream)
	info, _ := st.Info(ctx)
	if info.State.Msgs != 1 { // the delete marker
		t.Fatalf("%d messages after the delete, want only its marker", info.State.Msgs)
	}
}

// A reader that fails mid-body leaves nothing: no metadata, no chunks.
func TestPutFailurePurges(t *testing.T) {
	js, up := setup(t)
	ctx := context.Background()
	r := io.MultiReader(strings.NewReader(strings.Repeat("x", 2*ChunkSize+3)), failing{})
	if _, err := Put(ctx, js, js.Conn(), *up, r); err == nil {
		t.Fatal("put of a failing reader succeeded")
	}
	st, _ := js.Stream(ctx, Stream)
	info, _ := st.Info(ctx)
	if info.State.Msgs != 0 {
		t.Fatalf("%d messages left", info.State.Msgs)
	}
	var n int
	if err := Each(ctx, js.Conn(), 10, func(*File) bool { n++; return true }); err != nil || n != 0 {
		t.Fatalf("Each: %d, %v", n, err)
	}
}

type failing struct{}

func (failing) Read([]byte) (int, error) { return 0, errors.New("client gone") }

// Each lists every file of every org, in batches.
func TestEach(t *testing.T) {
	js, up := setup(t)
	ctx := context.Background()
	for i := range 7 {
		u := *up
		u.ID, u.Org = NewID(), []string{"acme", "globex"}[i%2]
		if _, err := Put(ctx, js, js.Conn(), u, strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
	}
	orgs := map[string]int{}
	if err := Each(ctx, js.Conn(), 3, func(f *File) bool { orgs[f.Org]++; return true }); err != nil {
		t.Fatal(err)
	}
	if orgs["acme"] != 4 || orgs["globex"] != 3 {
		t.Fatalf("listed %v", orgs)
	}
}
