// Package files is the chat_files object store as Switchboard uses it: the
// bucket's configuration, the object names and metadata of uploaded files,
// a lookup of one file's metadata, a compare-and-set of its attached state,
// a reader that streams its chunks one at a time (with a byte range), and a
// listing of every file for the sweeper.
//
// An object is named names.FileObject(org, fileID); its metadata holds the
// conversation, the uploader, the file's name and content type, its
// creation time and, once a message claimed it, the claim (Attached). The
// object store's own SHA-256 digest, computed by Put while it streams, is
// the file's sha256.
//
// Everything here reads with direct gets (the bucket's stream allows them)
// and writes metadata with plain publishes, so that its NATS users need no
// consumer: STREAM.INFO and DIRECT.GET of the stream, its $O subjects, and
// STREAM.PURGE for deletes (kit/natsauth).
package files

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// Defaults shared by the edge (the upload limit) and messaging (the bucket
// and the sweeper).
const (
	// DefaultMaxFileBytes is the largest upload (25 MiB).
	DefaultMaxFileBytes = 25 << 20
	// DefaultBucketMaxBytes bounds chat_files on each replica (1 GiB):
	// JetStream reserves it, so it is sized for a laptop's first run.
	DefaultBucketMaxBytes = int64(1 << 30)
	// DefaultUnattachedTTL is how long an upload may wait for a message.
	DefaultUnattachedTTL = 24 * time.Hour
)

// Metadata keys of a file object.
const (
	metaConversation = "conversation"
	metaUploader     = "uploader"
	metaName         = "name"
	metaType         = "content-type"
	metaCreated      = "created-ms"
	metaAttached     = "attached"
)

// ErrNotFound is a file that does not exist, was deleted, or is not an
// upload of this organization.
var ErrNotFound = errors.New("file not found")

// Config is the chat_files bucket: replicas like the other state, bounded
// by maxBytes (negative: no bound), files expire after retention, as their
// conversation's events do.
func Config(replicas int, maxBytes int64, retention time.Duration) jetstream.ObjectStoreConfig {
	if maxBytes < 0 {
		maxBytes = -1
	}
	return jetstream.ObjectStoreConfig{
		Bucket:      names.BucketFiles,
		Description: "Switchboard uploaded files: <org>.<fileId>, conversation and uploader in the metadata",
		TTL:         retention,
		MaxBytes:    maxBytes,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// Stream is the bucket's stream.
var Stream = names.ObjectStream(names.BucketFiles)

// metaSubject is the subject of a file's metadata.
func metaSubject(org, id string) string {
	return "$O." + names.BucketFiles + ".M." + base64.URLEncoding.EncodeToString([]byte(names.FileObject(org, id)))
}

// chunkSubject is the subject of an object's chunks.
func chunkSubject(nuid string) string { return "$O." + names.BucketFiles + ".C." + nuid }

// Upload is what the uploader says of a new file.
type Upload struct {
	Org, ID, Conversation, Uploader, Name, ContentType string
	Created                                            time.Time
}

// Meta is the object metadata of an upload.
func (u Upload) Meta() jetstream.ObjectMeta {
	return jetstream.ObjectMeta{
		Name: names.FileObject(u.Org, u.ID),
		Metadata: map[string]string{
			metaConversation: u.Conversation,
			metaUploader:     u.Uploader,
			metaName:         u.Name,
			metaType:         u.ContentType,
			metaCreated:      strconv.FormatInt(u.Created.UnixMilli(), 10),
		},
	}
}

// File is a stored file, as its metadata says.
type File struct {
	Upload
	Size   uint64
	SHA256 string // hex
	// Attached is the claim of the message it is attached to ("" when
	// none): the sender and the send's clientMsgId (Claim).
	Attached string

	info jetstream.ObjectInfo // as stored, for a compare-and-set
	seq  uint64               // the metadata message's stream sequence
}

// ETag is the file's entity tag: its sha256 in quotes.
func (f *File) ETag() string { return `"` + f.SHA256 + `"` }

// FromInfo reads a file's description from object info, as Put returns
// it; ok is false for an object that is not a file of org.
func FromInfo(org string, info *jetstream.ObjectInfo) (*File, bool) {
	if info == nil || info.Deleted || info.NUID == "" || info.Opts != nil && info.Opts.Link != nil {
		return nil, false
	}
	orgPart, id, ok := cutName(info.Name)
	if !ok || orgPart != org {
		return nil, false
	}
	md := info.Metadata
	ms, err := strconv.ParseInt(md[metaCreated], 10, 64)
	if err != nil || md[metaConversation] == "" {
		return nil, false
	}
	sum, err := jetstream.DecodeObjectDigest(info.Digest)
	if err != nil {
		return nil, false
	}
	f := &File{
		Upload: Upload{Org: org, ID: id, Conversation: md[metaConversation], Uploader: md[metaUploader],
			Name: md[metaName], ContentType: md[metaType], Created: time.UnixMilli(ms).UTC()},
		Size: info.Size, SHA256: hex.EncodeToString(sum), Attached: md[metaAttached], info: *info,
	}
	return f, true
}

// cutName splits an object name <org>.<fileId>.
func cutName(name string) (org, id string, ok bool) {
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			return name[:i], name[i+1:], i > 0 && i < len(name)-1
		}
	}
	return "", "", false
}

// Lookup reads the file id of org: ErrNotFound when there is none (or it
// was deleted); a NATS failure is returned as is (natsx.IsUnavailable).
func Lookup(ctx context.Context, nc *nats.Conn, org, id string) (*File, error) {
	// The last message of the subject, which is its only one (a rollup).
	m, ok, err := natsx.DirectNext(ctx, nc, Stream, metaSubject(org, id), 1)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotFound
	}
	return parse(org, m)
}

// parse is a metadata message of org's file (of any org's when org is
// "").
func parse(org string, m natsx.StoredMsg) (*File, error) {
	var info jetstream.ObjectInfo
	if err := json.Unmarshal(m.Data, &info); err != nil {
		return nil, fmt.Errorf("%w: bad metadata: %v", ErrNotFound, err)
	}
	if org == "" {
		org, _, _ = cutName(info.Name)
	}
	f, ok := FromInfo(org, &info)
	if !ok {
		return nil, ErrNotFound
	}
	f.seq = m.Seq
	return f, nil
}

// ErrChanged is a compare-and-set that lost: the file's metadata changed
// since it was read.
var ErrChanged = errors.New("file metadata changed")

// SetAttached writes the file's claim ("" releases it), provided its
// metadata is still what f was read from (ErrChanged otherwise); f then
// holds what was written.
func SetAttached(ctx context.Context, js jetstream.JetStream, f *File, claim string) error {
	info := f.info
	md := make(map[string]string, len(info.Metadata)+1)
	for k, v := range info.Metadata {
		md[k] = v
	}
	if claim == "" {
		delete(md, metaAttached)
	} else {
		md[metaAttached] = claim
	}
	info.Metadata = md
	seq, err := publishMeta(ctx, js, f, &info)
	if err != nil {
		return err
	}
	f.info, f.seq, f.Attached = info, seq, claim
	return nil
}

// Delete removes the file, provided its metadata is still what f was read
// from (ErrChanged otherwise): a delete marker replaces the metadata (as
// the object store's own Delete writes it), then the chunks are purged
// (nc). Racing a claim (SetAttached), exactly one of
// the two wins. A purge that fails leaves chunks that no metadata points
// to, until the bucket's max age.
func Delete(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, f *File) error {
	info := f.info
	info.Deleted = true
	info.Size, info.Chunks, info.Digest = 0, 0, ""
	if _, err := publishMeta(ctx, js, f, &info); err != nil {
		return err
	}
	return purge(ctx, nc, chunkSubject(f.info.NUID))
}

// publishMeta replaces f's metadata message with info (a rollup of its
// subject), expecting f's sequence to be the subject's last.
func publishMeta(ctx context.Context, js jetstream.JetStream, f *File, info *jetstream.ObjectInfo) (uint64, error) {
	info.ModTime = time.Time{} // not stored: the message's time is
	data, err := json.Marshal(info)
	if err != nil {
		return 0, err
	}
	m := nats.NewMsg(metaSubject(f.Org, f.ID))
	m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	m.Data = data
	ack, err := js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(f.seq))
	if natsx.IsWrongLastSequence(err) {
		return 0, ErrChanged
	}
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// Claim is the Attached value of a send: its sender and clientMsgId, so
// that a resend of the same message finds its own claim.
func Claim(user, clientMsgID string) string { return user + "/" + clientMsgID }

// NewID returns a new fileId: 128 random bits in hex (an id of
// docs/protocol.md), which nobody can guess from another.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func b64(b []byte) string { return base64.URLEncoding.EncodeToString(b) }
