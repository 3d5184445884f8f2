package edge

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/switchboard-chat/switchboard/kit/errs"
	"github.com/switchboard-chat/switchboard/kit/files"
	"github.com/switchboard-chat/switchboard/kit/ids"
	"github.com/switchboard-chat/switchboard/kit/natsx"
	"github.com/switchboard-chat/switchboard/kit/svc"
	"github.com/switchboard-chat/switchboard/proto/chatv1"
	"github.com/switchboard-chat/switchboard/proto/names"
)

// Files over HTTP (docs/protocol.md section 7): POST /files streams a body
// into the chat_files object store, GET /files/<fileId> streams one back,
// both with the token of /ws and messaging's word on membership (the
// "file" action). Neither holds a file in memory: an upload is read in the
// object store's chunks (128 KiB), a download is read chunk by chunk
// (files.Reader) as the client takes it. Both read and write with direct
// gets and publishes (kit/files): no consumer.

// fileUploadCommand is the rate-limit bucket of uploads.
const fileUploadCommand = "file:upload"

// fileJSON is the 201 body of an upload.
type fileJSON struct {
	FileID         string `json:"fileId"`
	ConversationID string `json:"conversationId"`
	Name           string `json:"name"`
	Size           uint64 `json:"size"`
	ContentType    string `json:"contentType"`
	SHA256         string `json:"sha256"`
	CreatedAt      string `json:"createdAt"`
}

// upload is POST /files?conversationId=&name=.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	id, ok := s.fileAuth(w, r, "upload")
	if !ok {
		return
	}
	p := &chatv1.Principal{Org: id.Org, User: id.User}
	up, err := s.uploadOf(r, p)
	if err != nil {
		s.fileFailed(w, "upload", err)
		return
	}
	if r.ContentLength > s.cfg.MaxFileBytes {
		s.tooLarge(w)
		return
	}
	if answered, err := s.sharedRate(p, fileUploadCommand, time.Now()); err != nil || !answered {
		if err == nil {
			err = errs.New(errs.CodeUnavailable, "rate limits unavailable; retry")
		}
		s.fileFailed(w, "upload", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.FileTimeout)
	defer cancel()
	if err := s.fileAccess(ctx, p, up.Conversation); err != nil {
		s.fileFailed(w, "upload", err)
		return
	}
	s.store(ctx, w, r, up)
}

// uploadOf reads and checks an upload's parameters.
func (s *Server) uploadOf(r *http.Request, p *chatv1.Principal) (files.Upload, error) {
	q := r.URL.Query()
	up := files.Upload{Org: p.Org, ID: files.NewID(), Conversation: q.Get("conversationId"), Uploader: p.User, Name: q.Get("name"), Created: time.Now()}
	var f errs.Fields
	f.ID("conversationId", up.Conversation)
	if why := files.CheckName(up.Name); why != "" {
		f.Add("name", why)
	}
	var why string
	if up.ContentType, why = files.ContentType(r.Header.Get("Content-Type")); why != "" {
		f.Add("Content-Type", why)
	}
	return up, f.Err()
}

// store streams the body into the object store and answers 201. The
// context is the edge's, not the request's: a client that goes away
// mid-upload must not cancel the purge of what was put.
func (s *Server) store(ctx context.Context, w http.ResponseWriter, r *http.Request, up files.Upload) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(s.cfg.FileTimeout))
	defer func() { _ = rc.SetReadDeadline(time.Time{}) }() // not the next request's on this connection
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxFileBytes)
	// A read error (too large, the client gone) makes Put purge the chunks
	// it put: nothing is stored.
	f, err := files.Put(ctx, s.js, s.nc, up, body)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		s.tooLarge(w)
		return
	}
	if err != nil {
		s.storageFailed(w, "upload", err)
		return
	}
	s.metrics.fileBytes.WithLabelValues("upload").Add(float64(f.Size))
	s.fileDone(w, "upload", http.StatusCreated)
	_ = json.NewEncoder(w).Encode(fileJSON{f.ID, f.Conversation, f.Name, f.Size, f.ContentType, f.SHA256, formatTime(f.Created)})
}

// download is GET (and HEAD) /files/{fileId}.
func (s *Server) download(w http.ResponseWriter, r *http.Request) {
	id, ok := s.fileAuth(w, r, "download")
	if !ok {
		return
	}
	p := &chatv1.Principal{Org: id.Org, User: id.User}
	fileID := r.PathValue("fileId")
	if !ids.Valid(fileID) {
		s.fileFailed(w, "download", errNoFile)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.FileTimeout)
	defer cancel()
	f, err := files.Lookup(ctx, s.nc, p.Org, fileID)
	if errors.Is(err, files.ErrNotFound) {
		s.fileFailed(w, "download", errNoFile)
		return
	}
	if err != nil {
		s.storageFailed(w, "download", err)
		return
	}
	if err := s.fileAccess(ctx, p, f.Conversation); err != nil {
		s.fileFailed(w, "download", err)
		return
	}
	s.serveFile(ctx, w, r, f)
}

// errNoFile is every download that finds nothing it may serve: no such
// file, another organization's, or a conversation the caller is not in.
var errNoFile = errs.NotFound("file")

// serveFile writes f's headers and the requested bytes.
func (s *Server) serveFile(ctx context.Context, w http.ResponseWriter, r *http.Request, f *files.File) {
	fileHeaders(w.Header(), f)
	if etagMatch(r.Header.Get("If-None-Match"), f.ETag()) {
		s.fileDone(w, "download", http.StatusNotModified)
		return
	}
	rg, status := requestedRange(r, f)
	if status == http.StatusRequestedRangeNotSatisfiable {
		w.Header().Set("Content-Range", "bytes */"+strconv.FormatUint(f.Size, 10))
		s.fileJSONError(w, "download", status, errs.New(errs.CodeValidation, "range not satisfiable"))
		return
	}
	w.Header().Set("Content-Length", strconv.FormatUint(rg.length, 10))
	if status == http.StatusPartialContent {
		w.Header().Set("Content-Range", rg.contentRange(f.Size))
	}
	s.fileDone(w, "download", status)
	if r.Method == http.MethodHead || rg.length == 0 {
		return
	}
	n, err := io.Copy(w, files.NewReader(ctx, s.nc, f, rg.start, rg.length))
	s.metrics.fileBytes.WithLabelValues("download").Add(float64(n))
	if err != nil {
		// The headers are out: the client sees a short body.
		s.warnEvery("file-read", 10*time.Second, "file download cut short", "err", err, "written", n)
	}
}

// fileAccess asks messaging whether p may use the conversation's files.
func (s *Server) fileAccess(ctx context.Context, p *chatv1.Principal, conv string) error {
	var resp chatv1.FileAccessResponse
	start := time.Now()
	err := svc.Call(ctx, s.nc, names.Command(names.Messaging, p.Org, names.ActionFile), &chatv1.FileAccessRequest{Principal: p, ConversationId: conv}, &resp)
	s.metrics.requests.WithLabelValues(names.Messaging, names.ActionFile).Observe(time.Since(start).Seconds())
	return err
}

// fileAuth verifies the token exactly as an upgrade to /ws does, and
// answers 401 (or 503 while draining) itself.
func (s *Server) fileAuth(w http.ResponseWriter, r *http.Request, op string) (Identity, bool) {
	if s.draining.Load() {
		s.fileJSONError(w, op, http.StatusServiceUnavailable, errs.New(errs.CodeUnavailable, "draining"))
		return Identity{}, false
	}
	token := bearer(r)
	if token == "" {
		s.fileUnauthorized(w, r, op, "missing token", "no token in the Authorization header or access_token")
		return Identity{}, false
	}
	id, err := s.auth.Verify(token)
	if err != nil {
		s.fileUnauthorized(w, r, op, "invalid token", err.Error())
		return Identity{}, false
	}
	return id, true
}

func (s *Server) fileUnauthorized(w http.ResponseWriter, r *http.Request, op, label, why string) {
	s.metrics.authFailures.WithLabelValues(label).Inc()
	s.log.Info("file request refused", "reason", why, "remote", r.RemoteAddr)
	w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard"`)
	s.fileJSONError(w, op, http.StatusUnauthorized, errs.New(errs.CodeUnauthenticated, "missing, invalid or expired token"))
}

func (s *Server) tooLarge(w http.ResponseWriter) {
	s.fileJSONError(w, "upload", http.StatusRequestEntityTooLarge,
		errs.New(errs.CodeValidation, "file is larger than %d bytes", s.cfg.MaxFileBytes))
}

// storageFailed answers a failure of the object store: 503, the cause
// logged (a full bucket, a stream without a leader, NATS down).
func (s *Server) storageFailed(w http.ResponseWriter, op string, err error) {
	if !natsx.IsUnavailable(err) {
		s.warnEvery("file-storage", 10*time.Second, "file storage failed", "op", op, "err", err)
	}
	s.fileJSONError(w, op, http.StatusServiceUnavailable, errs.New(errs.CodeUnavailable, "file storage unavailable; retry"))
}

// fileFailed answers err (an *errs.Error, or a NATS failure) with its
// status: not_found and forbidden alike are 404.
func (s *Server) fileFailed(w http.ResponseWriter, op string, err error) {
	e := natsx.AsError(err)
	status := http.StatusInternalServerError
	switch e.Code {
	case errs.CodeValidation:
		status = http.StatusBadRequest
	case errs.CodeNotFound, errs.CodeForbidden:
		status, e = http.StatusNotFound, errNoFileOrConversation(op)
	case errs.CodeRateLimited:
		status = http.StatusTooManyRequests
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(e.RetryAfter.Seconds())), 10))
	case errs.CodeUnavailable:
		status = http.StatusServiceUnavailable
	case errs.CodeConflict:
		status = http.StatusConflict
	}
	s.fileJSONError(w, op, status, e)
}

// errNoFileOrConversation is the one 404 of each operation, whatever was
// missing: a download never says whether the file or the membership was.
func errNoFileOrConversation(op string) *errs.Error {
	if op == "upload" {
		return errs.NotFound("conversation")
	}
	return errNoFile
}

func (s *Server) fileJSONError(w http.ResponseWriter, op string, status int, e *errs.Error) {
	h := w.Header()
	for _, k := range []string{"Content-Disposition", "Content-Length", "ETag"} {
		h.Del(k)
	}
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	s.fileDone(w, op, status)
	// The body of a command's error reply (render.go), as JSON alone.
	body := errorJSON{Code: e.Code, Message: e.Message}
	for _, f := range e.Fields {
		body.Fields = append(body.Fields, fieldJSON{f.Field, f.Reason})
	}
	if e.RetryAfter > 0 {
		ms := e.RetryAfter.Milliseconds()
		body.RetryAfterMs = &ms
	}
	_ = json.NewEncoder(w).Encode(body)
}

// fileDone counts an answer and writes its status.
func (s *Server) fileDone(w http.ResponseWriter, op string, status int) {
	s.metrics.files.WithLabelValues(op, strconv.Itoa(status)).Inc()
	if status == http.StatusCreated {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(status)
}
