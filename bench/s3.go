package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3 server settings of the cold-read run. The keys only guard a loopback
// server that lives as long as the run.
const (
	coldBucket    = "strata-bench"
	coldPrefix    = "strata"
	coldAccessKey = "strata-bench-access"
	coldSecretKey = "strata-bench-secret-key"
	coldRegion    = "us-east-1"
)

// s3Server is a versitygw process serving coldBucket from a directory
// (its posix backend: one bucket per sub-directory) on a free loopback
// port.
type s3Server struct {
	cmd      *exec.Cmd
	dir      string
	endpoint string
	out      *tailBuffer
	exited   chan struct{}
	waitErr  error
}

// findVersitygw looks for the binary on PATH, then where `go install`
// puts it (GOBIN, else GOPATH/bin; `make deps-test` installs it there). explicit, when set, is used as is.
func findVersitygw(explicit string) (string, error) {
	if explicit != "" {
		if _, err := os.Stat(explicit); err != nil {
			return "", err
		}
		return explicit, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	var tried []string
	if out, err := exec.Command("go", "env", "GOBIN").Output(); err == nil {
		if gb := strings.TrimSpace(string(out)); gb != "" {
			tried = append(tried, filepath.Join(gb, "versitygw"))
		}
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, gp := range filepath.SplitList(strings.TrimSpace(string(out))) {
			if gp != "" {
				tried = append(tried, filepath.Join(gp, "bin", "versitygw"))
			}
		}
	}
	for _, p := range tried {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("versitygw is not on PATH nor in %s; `make deps-test` installs it (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)",
		strings.Join(tried, ", "))
}

// startS3Server starts versitygw with a fresh directory under dataRoot
// holding an empty bucket, and waits until it answers HTTP.
func startS3Server(ctx context.Context, log *slog.Logger, bin, dataRoot string) (*s3Server, error) {
	dir, err := os.MkdirTemp(dataRoot, "strata-bench-s3-*")
	if err != nil {
		return nil, err
	}
	if err := os.Mkdir(filepath.Join(dir, coldBucket), 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command(bin, "--port", addr, "--quiet", "posix", dir)
	// Variables versitygw reads for its own configuration are dropped, so
	// the caller's environment cannot change the server.
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "VGW_") || strings.HasPrefix(name, "ROOT_") {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, "ROOT_ACCESS_KEY="+coldAccessKey, "ROOT_SECRET_KEY="+coldSecretKey)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	s := &s3Server{cmd: cmd, dir: dir, endpoint: "http://" + addr, out: newTailBuffer(16 << 10), exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s.out, s.out
	log.Info("starting versitygw", "bin", bin, "addr", addr, "dir", dir)
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(ctx, 30*time.Second); err != nil {
		s.stop()
		return nil, fmt.Errorf("versitygw on %s: %w\noutput:\n%s", addr, err, s.out.LastLines(brokerOutputLines))
	}
	return s, nil
}

// waitReady polls until the server answers HTTP at all: an unsigned
// request gets 403, which proves the S3 API is served.
func (s *s3Server) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.endpoint+"/", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-s.exited:
			t.Stop()
			return fmt.Errorf("exited during startup: %v", s.waitErr)
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("not answering: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// stop ends the server and removes its directory.
func (s *s3Server) stop() {
	defer os.RemoveAll(s.dir)
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-s.exited:
	case <-t.C:
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// brokerFlags point a broker at the server.
func (s *s3Server) brokerFlags() []string {
	return []string{
		"--object-store", "s3://" + coldBucket + "/" + coldPrefix,
		"--s3-endpoint", s.endpoint,
		"--s3-path-style", "true",
		"--s3-region", coldRegion,
		"--set", "s3-access-key=" + coldAccessKey,
		"--set", "s3-secret-key=" + coldSecretKey,
	}
}

// newS3Client is the bench's own client of the server, built the way an
// operator's tool would: static keys, path style, no checksum work beyond
// what S3 requires (the broker's store does the same), and a connection
// pool as large as the GET concurrency.
func newS3Client(ctx context.Context, endpoint string, conns int) (*s3.Client, error) {
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion(coldRegion),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(coldAccessKey, coldSecretKey, "")),
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConnsPerHost = max(conns, 2)
		})),
	)
	if err != nil {
		return nil, err
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
		o.DisableLogOutputChecksumValidationSkipped = true
	}), nil
}

// objectRef is one object of the bucket.
type objectRef struct {
	Key  string
	Size int64
}

// listObjects lists every object of the bucket under prefix.
func listObjects(ctx context.Context, c *s3.Client, bucket, prefix string) ([]objectRef, error) {
	var out []objectRef
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			out = append(out, objectRef{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size)})
		}
	}
	return out, nil
}

// bucketManifest is the part of the broker's manifest copy in the bucket
// (<cluster>/manifests/<topic id>/<partition>.json) the bench reads.
type bucketManifest struct {
	Segments []struct {
		ID   string `json:"id"`
		Size int64  `json:"size"`
	} `json:"segments"`
}

// manifestSegmentIDs reads the manifest copies of topicID among objs and
// returns the upload ids of the segments they list (nil when there is no
// manifest copy).
func manifestSegmentIDs(ctx context.Context, c *s3.Client, bucket string, objs []objectRef, topicID string) (map[string]bool, error) {
	var ids map[string]bool
	for _, o := range objs {
		if !isManifestKey(o.Key, topicID) {
			continue
		}
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(o.Key)})
		if err != nil {
			return nil, fmt.Errorf("get %s: %w", o.Key, err)
		}
		var m bucketManifest
		err = json.NewDecoder(out.Body).Decode(&m)
		out.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", o.Key, err)
		}
		if ids == nil {
			ids = map[string]bool{}
		}
		for _, s := range m.Segments {
			ids[s.ID] = true
		}
	}
	return ids, nil
}

func isManifestKey(key, topicID string) bool {
	return strings.Contains(key, "/manifests/"+topicID+"/") && strings.HasSuffix(key, ".json")
}

// selectLogObjects picks the segment data objects of topicID: keys
// <...>/<topicID>/<partition>/<20-digit base>-<upload id>.log. With ids
// (from the manifests) only committed segments count, so a failed
// upload's leftover is not read.
func selectLogObjects(objs []objectRef, topicID string, ids map[string]bool) []objectRef {
	var out []objectRef
	for _, o := range objs {
		if !strings.HasSuffix(o.Key, ".log") || !strings.Contains(o.Key, "/"+topicID+"/") {
			continue
		}
		name := o.Key[strings.LastIndexByte(o.Key, '/')+1:]
		base, id, ok := strings.Cut(strings.TrimSuffix(name, ".log"), "-")
		if !ok || len(base) != 20 {
			continue
		}
		if ids != nil && !ids[id] {
			continue
		}
		out = append(out, o)
	}
	return out
}

// getRange is one ranged GET: n bytes of key from off.
type getRange struct {
	Key    string
	Off, N int64
}

// splitRanges cuts each object into ranges of at most size bytes, object
// by object, the way a reader walking segments in order asks for them.
func splitRanges(objs []objectRef, size int64) []getRange {
	var out []getRange
	for _, o := range objs {
		for off := int64(0); off < o.Size; off += size {
			out = append(out, getRange{Key: o.Key, Off: off, N: min(size, o.Size-off)})
		}
	}
	return out
}

// GetResult is the raw GET throughput of the bucket's segment objects.
type GetResult struct {
	Objects     int           `json:"objects"`
	ObjectBytes int64         `json:"object_bytes"`
	Passes      int           `json:"passes"` // times every object was read
	Requests    int64         `json:"requests"`
	Bytes       int64         `json:"bytes"`
	Elapsed     time.Duration `json:"elapsed_ns"`
	Concurrency int           `json:"concurrency"`
	RangeBytes  int64         `json:"range_bytes"`
	// ToFiles: each range was written to a new file on the data disk, as
	// a disk cache must, rather than discarded.
	ToFiles    bool    `json:"to_files,omitempty"`
	Errors     int64   `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	MBps       float64 `json:"mb_per_s"`
}

// rawGet downloads every range of every object, concurrency at a time,
// discarding the bytes: the most the object store gives a client that
// does nothing with what it reads. Whole passes over the objects repeat
// until minTime has passed (at most rawGetMaxPass of them), and the
// result is their total bytes over their total time.
//
// With fileDir set, each range is written to a new file in fileDir
// instead (what the broker's remote cache does with a chunk); the files
// of a pass are removed after it, outside the timed part.
func rawGet(ctx context.Context, c *s3.Client, bucket string, objs []objectRef, rangeBytes int64, concurrency int, minTime time.Duration, fileDir string) GetResult {
	ranges := splitRanges(objs, rangeBytes)
	res := GetResult{Objects: len(objs), Concurrency: concurrency, RangeBytes: rangeBytes, ToFiles: fileDir != ""}
	for _, o := range objs {
		res.ObjectBytes += o.Size
	}
	for res.Passes == 0 || (res.Elapsed < minTime && res.Passes < rawGetMaxPass && res.Errors == 0 && ctx.Err() == nil) {
		rawGetPass(ctx, c, bucket, ranges, concurrency, fileDir, &res)
		res.Passes++
		if fileDir != "" {
			if err := emptyDir(fileDir); err != nil && res.FirstError == "" {
				res.Errors++
				res.FirstError = err.Error()
			}
		}
	}
	res.MBps, _ = rates(res.Bytes, 0, res.Elapsed)
	return res
}

// rawGetPass reads every range once and adds to res.
func rawGetPass(ctx context.Context, c *s3.Client, bucket string, ranges []getRange, concurrency int, fileDir string, res *GetResult) {
	work := make(chan getRange)
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	var last time.Time
	var seq atomic.Int64
	for range concurrency {
		wg.Go(func() {
			buf := make([]byte, 256<<10)
			for r := range work {
				var dst io.Writer = discard{}
				var f *os.File
				if fileDir != "" {
					var err error
					f, err = os.OpenFile(filepath.Join(fileDir, strconv.FormatInt(seq.Add(1), 10)), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
					if err != nil {
						mu.Lock()
						res.Errors++
						if res.FirstError == "" {
							res.FirstError = err.Error()
						}
						mu.Unlock()
						continue
					}
					dst = f
				}
				n, err := getOne(ctx, c, bucket, r, dst, buf)
				if f != nil {
					if cerr := f.Close(); err == nil {
						err = cerr
					}
				}
				now := time.Now()
				mu.Lock()
				res.Requests++
				res.Bytes += n
				if err == nil && n != r.N {
					err = fmt.Errorf("got %d bytes, asked for %d", n, r.N)
				}
				if err != nil {
					res.Errors++
					if res.FirstError == "" {
						res.FirstError = fmt.Sprintf("%s [%d, +%d): %v", r.Key, r.Off, r.N, err)
					}
				}
				last = now
				mu.Unlock()
			}
		})
	}
feed:
	for _, r := range ranges {
		select {
		case work <- r:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if !last.IsZero() {
		res.Elapsed += last.Sub(start)
	}
}

func getOne(ctx context.Context, c *s3.Client, bucket string, r getRange, dst io.Writer, buf []byte) (int64, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(bucket),
		Key:    aws.String(r.Key),
		Range:  aws.String("bytes=" + strconv.FormatInt(r.Off, 10) + "-" + strconv.FormatInt(r.Off+r.N-1, 10)),
	})
	if err != nil {
		return 0, err
	}
	defer out.Body.Close()
	n, err := io.CopyBuffer(dst, out.Body, buf)
	if err != nil && !errors.Is(err, io.EOF) {
		return n, err
	}
	return n, nil
}

// discard is io.Discard without its ReaderFrom, so CopyBuffer reads with
// the worker's own buffer instead of a pooled one.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// uuidString formats a 16-byte id the way the broker's object keys do.
func uuidString(b [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
