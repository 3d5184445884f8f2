package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Upload mode: -conns users of one conversation each upload a file of
// -file-bytes (generated as it is sent, never in memory) and download it
// again, at -rate uploads per second in total (each user waits for its
// turn, and for its previous round to end), for -duration. It reports
// latencies and throughput both ways, checks every download's sha256, and
// samples the server's /metrics for its memory during the run. The server
// needs a high file:upload limit, e.g.
// SWITCHBOARD_LIMITS='file:upload=100000/1s,default=100000/1s'.

// uploadResult is what an upload run measured.
type uploadResult struct {
	Mode      string  `json:"mode"`
	URL       string  `json:"url"`
	Conns     int     `json:"conns"`
	Rate      float64 `json:"rate"`
	DurationS float64 `json:"duration_s"`
	FileBytes int64   `json:"file_bytes"`

	Uploads         int64            `json:"uploads"`
	Downloads       int64            `json:"downloads"`
	Failures        map[string]int64 `json:"failures"`
	UploadLatency   LatencySummary   `json:"upload_latency"`
	DownloadLatency LatencySummary   `json:"download_latency"`
	UploadMBps      float64          `json:"upload_mb_per_s"`
	DownloadMBps    float64          `json:"download_mb_per_s"`
	Seconds         float64          `json:"seconds"`

	// The server's memory (from its /metrics, every 100 ms): before the
	// run and the peak during it.
	Memory     map[string]float64 `json:"server_memory_bytes"`
	MetricsURL string             `json:"metrics_url"`
	Notes      []string           `json:"notes,omitempty"`
}

// fileClient only dials loopback addresses and has no overall timeout (a
// body may take a while); each request has the run's -timeout per file.
var fileClient = &http.Client{
	Transport: &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: 256,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return loopbackDial(ctx, network, addr, nil)
		},
	},
}

func runUpload(cfg *config, d *dialer) (*uploadResult, error) {
	res := &uploadResult{Mode: "upload", URL: cfg.url, Conns: cfg.conns, Rate: cfg.rate, DurationS: cfg.duration.Seconds(),
		FileBytes: cfg.fileBytes, Failures: map[string]int64{}, MetricsURL: cfg.metricsURL}
	conv, err := createConversation(cfg, d)
	if err != nil {
		return res, fmt.Errorf("create the conversation: %w", err)
	}
	base := "http://" + strings.TrimPrefix(strings.TrimSuffix(cfg.url, "/ws"), "ws://")
	mem := sampleMemory(cfg.metricsURL)
	up, down := NewHist(), NewHist()
	var ups, downs atomic.Int64
	var fmu sync.Mutex
	fail := func(key string) {
		fmu.Lock()
		res.Failures[key]++
		fmu.Unlock()
	}
	start := time.Now()
	end := start.Add(cfg.duration)
	every := time.Duration(float64(cfg.conns) / cfg.rate * float64(time.Second))
	var wg sync.WaitGroup
	for i := range cfg.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := d.mint(cfg.user(i))
			next := start.Add(time.Duration(i) * every / time.Duration(cfg.conns))
			for n := 0; ; n++ {
				if time.Now().Before(next) {
					time.Sleep(time.Until(next))
				}
				if time.Now().After(end) {
					return
				}
				next = next.Add(every)
				id, sum, took, err := uploadOnce(cfg, base, tok, conv, uint64(i)<<32|uint64(n))
				if err != nil {
					fail("upload: " + err.Error())
					continue
				}
				ups.Add(1)
				up.Record(int64(took))
				if took, err = downloadOnce(cfg, base, tok, id, sum); err != nil {
					fail("download: " + err.Error())
					continue
				}
				downs.Add(1)
				down.Record(int64(took))
			}
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.Memory = mem()
	res.Uploads, res.Downloads = ups.Load(), downs.Load()
	res.UploadLatency, res.DownloadLatency = up.Summary(), down.Summary()
	mb := float64(cfg.fileBytes) / 1e6
	res.UploadMBps = float64(res.Uploads) * mb / res.Seconds
	res.DownloadMBps = float64(res.Downloads) * mb / res.Seconds
	if len(res.Memory) == 0 {
		res.Notes = append(res.Notes, "no server metrics read from "+cfg.metricsURL)
	}
	return res, nil
}

// createConversation makes the run's conversation of every load user, as
// user 0, over a WebSocket.
func createConversation(cfg *config, d *dialer) (string, error) {
	c, err := d.dial(&run{st: newStats()}, 0, cfg.user(0))
	if err != nil {
		return "", err
	}
	defer c.close()
	others := make([]string, 0, cfg.conns-1)
	for i := 1; i < cfg.conns; i++ {
		others = append(others, cfg.user(i))
	}
	payload, _ := json.Marshal(map[string]any{"id": "create", "type": "conversation:create", "data": map[string]any{"participants": others}})
	reply, err := c.request("create", payload, cfg.timeout)
	if err != nil {
		return "", err
	}
	var r struct {
		Type string `json:"type"`
		Data struct {
			ConversationID string `json:"conversationId"`
			Message        string `json:"message"`
		} `json:"data"`
	}
	if err := json.Unmarshal(reply, &r); err != nil || r.Type != "ack" {
		return "", fmt.Errorf("conversation:create: %s", reply)
	}
	return r.Data.ConversationID, nil
}

// genBody is n pseudo-random bytes made as they are read, hashing them.
type genBody struct {
	rng  *rand.ChaCha8
	left int64
	h    interface {
		io.Writer
		Sum([]byte) []byte
	}
}

func (g *genBody) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.left)]
	_, _ = g.rng.Read(p)
	g.h.Write(p)
	g.left -= int64(len(p))
	return len(p), nil
}

// uploadOnce uploads one generated file and returns its id and sha256.
func uploadOnce(cfg *config, base, tok, conv string, seed uint64) (id, sum string, took time.Duration, err error) {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	body := &genBody{rng: rand.NewChaCha8(s), left: cfg.fileBytes, h: sha256.New()}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	q := url.Values{"conversationId": {conv}, "name": {"load.bin"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/files?"+q.Encode(), body)
	if err != nil {
		return "", "", 0, err
	}
	req.ContentLength = cfg.fileBytes
	req.Header.Set("Authorization", "Bearer "+tok)
	began := time.Now()
	resp, err := fileClient.Do(req)
	if err != nil {
		return "", "", 0, errors.New(dialErrKey(err))
	}
	defer resp.Body.Close()
	var ack struct {
		FileID string `json:"fileId"`
		SHA256 string `json:"sha256"`
		Code   string `json:"code"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&ack)
	took = time.Since(began)
	if resp.StatusCode != http.StatusCreated {
		return "", "", 0, fmt.Errorf("%d %s", resp.StatusCode, ack.Code)
	}
	if want := hex.EncodeToString(body.h.Sum(nil)); ack.SHA256 != want {
		return "", "", 0, errors.New("sha256 differs")
	}
	return ack.FileID, ack.SHA256, took, nil
}

// downloadOnce downloads a file, checking its size and sha256.
func downloadOnce(cfg *config, base, tok, id, sum string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/files/"+id, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	began := time.Now()
	resp, err := fileClient.Do(req)
	if err != nil {
		return 0, errors.New(dialErrKey(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%d", resp.StatusCode)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	took := time.Since(began)
	switch {
	case err != nil:
		return 0, errors.New(dialErrKey(err))
	case n != cfg.fileBytes:
		return 0, fmt.Errorf("%d bytes", n)
	case hex.EncodeToString(h.Sum(nil)) != sum:
		return 0, errors.New("sha256 differs")
	}
	return took, nil
}

// uploadMetrics are the server's memory figures sampled during a run.
var uploadMetrics = []string{"process_resident_memory_bytes", "go_memstats_heap_inuse_bytes"}

// sampleMemory reads the server's memory every 100 ms until the returned
// function is called, which returns each metric before the run
// ("<name>_before") and its peak ("<name>_peak").
func sampleMemory(metricsURL string) func() map[string]float64 {
	out := map[string]float64{}
	before, err := fetchMetrics(metricsURL, uploadMetrics)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: server metrics:", err)
		return func() map[string]float64 { return nil }
	}
	for k, v := range before {
		out[k+"_before"], out[k+"_peak"] = v, v
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if m, err := fetchMetrics(metricsURL, uploadMetrics); err == nil {
				for k, v := range m {
					out[k+"_peak"] = max(out[k+"_peak"], v)
				}
			}
		}
	}()
	return func() map[string]float64 {
		close(stop)
		<-done
		return out
	}
}

func (r *uploadResult) human() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	lat := func(s LatencySummary) string {
		return fmt.Sprintf("p50 %.1f ms  p90 %.1f ms  p99 %.1f ms  max %.1f ms  (n %d)", s.P50, s.P90, s.P99, s.Max, s.Count)
	}
	mib := func(v float64) string { return fmt.Sprintf("%.1f MiB", v/(1<<20)) }
	p("== loadgen upload: %d users, %.2f uploads/s for %gs, %d-byte files (%s)", r.Conns, r.Rate, r.DurationS, r.FileBytes, r.URL)
	p("uploads      %d  (%.1f MB/s)  upload latency   %s", r.Uploads, r.UploadMBps, lat(r.UploadLatency))
	p("downloads    %d  (%.1f MB/s)  download latency %s", r.Downloads, r.DownloadMBps, lat(r.DownloadLatency))
	p("failures     %s", fmtCounts(r.Failures))
	if m := r.Memory; len(m) > 0 {
		p("server       RSS %s before, peak %s; heap in use %s before, peak %s (%s)",
			mib(m["process_resident_memory_bytes_before"]), mib(m["process_resident_memory_bytes_peak"]),
			mib(m["go_memstats_heap_inuse_bytes_before"]), mib(m["go_memstats_heap_inuse_bytes_peak"]), r.MetricsURL)
	}
	for _, n := range r.Notes {
		p("NOTE: %s", n)
	}
	return b.String()
}
