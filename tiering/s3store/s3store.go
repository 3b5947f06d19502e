package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"go.opentelemetry.io/otel/propagation"

	"github.com/strata-broker/strata/tiering/objstore"
)

// Defaults of Config.
const (
	DefaultPartSize    = 16 << 20
	DefaultMaxAttempts = 10
	DefaultMaxBackoff  = 5 * time.Second
	DefaultConcurrency = 4
	DefaultMaxConns    = 64
	// deleteBatch is S3's limit of keys per DeleteObjects request.
	deleteBatch = 1000
	// abortTimeout bounds the AbortMultipartUpload sent after a failed Put.
	abortTimeout = 30 * time.Second
)

// Config configures a Store. Zero values take the defaults above.
type Config struct {
	Bucket string
	// Prefix is prepended to every key; a '/' is added when missing.
	Prefix string
	objstore.S3Options

	// PartSize is both the multipart threshold and the part size (S3's
	// minimum part is 5 MiB).
	PartSize int64
	// Concurrency is the number of parts one multipart Put uploads at once.
	Concurrency int
	// MaxAttempts is the number of tries of one request (first included).
	MaxAttempts int
	// MaxBackoff caps the delay between tries.
	MaxBackoff time.Duration
	// RetryDelay, when set, replaces the SDK's exponential jitter backoff
	// (tests use it to retry quickly).
	RetryDelay func(attempt int) time.Duration
	// MaxConnsPerHost is the HTTP connection pool's size per host.
	MaxConnsPerHost int
	// HTTPClient, when set, replaces the SDK's HTTP client (MaxConnsPerHost
	// is then ignored).
	HTTPClient *http.Client
	// Logger receives warnings (batch delete unsupported, abort failures).
	Logger *slog.Logger
}

// Store is an objstore.Store on an S3 bucket.
type Store struct {
	client   *s3.Client
	uploader *manager.Uploader
	bucket   string
	prefix   string
	partSize int64
	log      *slog.Logger
	// noBatchDelete is set once the server has rejected DeleteObjects.
	noBatchDelete atomic.Bool
}

var _ objstore.Store = (*Store)(nil)

// New builds a Store. It sends no request: a wrong endpoint, bucket or key
// shows up as the first operation's error.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3 object store: empty bucket name")
	}
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("s3 object store: endpoint %q: want http://host[:port] or https://host[:port]", cfg.Endpoint)
		}
	}
	if (cfg.AccessKey == "") != (cfg.SecretKey == "") {
		return nil, errors.New("s3 object store: set both the access key and the secret key, or neither (default AWS credential chain)")
	}
	if cfg.PartSize <= 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.PartSize < manager.MinUploadPartSize {
		return nil, fmt.Errorf("s3 object store: part size %d below S3's minimum %d", cfg.PartSize, manager.MinUploadPartSize)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxConnsPerHost <= 0 {
		cfg.MaxConnsPerHost = DefaultMaxConns
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	prefix := cfg.Prefix
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}

	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer { return newRetryer(cfg) }),
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}
	if cfg.HTTPClient != nil {
		opts = append(opts, config.WithHTTPClient(cfg.HTTPClient))
	} else {
		opts = append(opts, config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConnsPerHost = cfg.MaxConnsPerHost
		})))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3 object store: loading AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		// S3-compatible servers mostly ignore the region but SigV4 needs
		// one; AWS itself answers a wrong one with a redirect error that
		// names the right one.
		awsCfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		o.DisableLogOutputChecksumValidationSkipped = true
		o.APIOptions = append(o.APIOptions, addTraceContext)
	})
	uploader := manager.NewUploader(client, func(u *manager.Uploader) {
		u.PartSize = cfg.PartSize
		u.Concurrency = cfg.Concurrency
		// Aborting is ours to do, with a context that outlives the Put's.
		u.LeavePartsOnError = true
		u.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	})
	return &Store{
		client:   client,
		uploader: uploader,
		bucket:   cfg.Bucket,
		prefix:   prefix,
		partSize: cfg.PartSize,
		log:      cfg.Logger.With("component", "s3store", "bucket", cfg.Bucket),
	}, nil
}

// newRetryer retries 5xx, SlowDown and other throttles with jittered
// exponential backoff per request. Not the SDK's adaptive mode: one
// throttled request there slows every later request of the client for
// seconds, and a broker's uploads and reads share one client.
func newRetryer(cfg Config) aws.Retryer {
	return retry.NewStandard(func(so *retry.StandardOptions) {
		so.MaxAttempts = cfg.MaxAttempts
		so.MaxBackoff = cfg.MaxBackoff
		so.RateLimiter = ratelimit.None
		if cfg.RetryDelay != nil {
			so.Backoff = retry.BackoffDelayerFunc(func(attempt int, _ error) (time.Duration, error) {
				return cfg.RetryDelay(attempt), nil
			})
		}
	})
}

// addTraceContext puts the W3C trace context of the request's context
// (traceparent, tracestate; objstore.InstrumentTracing's span) on every
// HTTP request, so a tracing proxy or object store joins the broker's
// trace. It runs after signing, on each attempt: a signed traceparent
// would make S3 reject the request once a proxy rewrites it with its own
// span id. Without a span in the context nothing is added.
func addTraceContext(stack *middleware.Stack) error {
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("StrataTraceContext",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			if req, ok := in.Request.(*smithyhttp.Request); ok {
				propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
			}
			return next.HandleFinalize(ctx, in)
		}), middleware.After)
}

// Client returns the underlying S3 client (for tests and diagnostics).
func (s *Store) Client() *s3.Client { return s.client }

func (s *Store) objectKey(op, key string) (*string, error) {
	if err := objstore.CheckKey(key); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return aws.String(s.prefix + key), nil
}

// Put implements objstore.Store.
func (s *Store) Put(ctx context.Context, key string, body io.ReaderAt, size int64) error {
	k, err := s.objectKey("put", key)
	if err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("put %s: negative size %d", key, size)
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           k,
		Body:          &exactReader{r: io.NewSectionReader(body, 0, size), size: size},
		ContentLength: aws.Int64(size),
	}
	if size <= s.partSize {
		if _, err := s.client.PutObject(ctx, in); err != nil {
			return fmt.Errorf("put %s: %w", key, s.mapErr(err))
		}
		return nil
	}
	if _, err := s.uploader.Upload(ctx, in); err != nil {
		var mu manager.MultiUploadFailure
		if errors.As(err, &mu) && mu.UploadID() != "" {
			s.abort(ctx, key, *k, mu.UploadID())
		}
		return fmt.Errorf("put %s: %w", key, s.mapErr(err))
	}
	return nil
}

func (s *Store) abort(ctx context.Context, key, objKey, uploadID string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(s.bucket), Key: aws.String(objKey), UploadId: aws.String(uploadID),
	})
	if err != nil {
		// The parts stay until a bucket lifecycle rule for incomplete
		// multipart uploads removes them.
		s.log.Warn("aborting failed multipart upload", "key", key, "upload_id", uploadID, "err", err)
	}
}

// exactReader turns a body that ends before its declared size into an
// error (io.ErrUnexpectedEOF) that the SDK does not retry, instead of a
// request with a short body that the server might store truncated.
type exactReader struct {
	r    *io.SectionReader
	size int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		if pos, _ := e.r.Seek(0, io.SeekCurrent); pos < e.size {
			return n, fmt.Errorf("body ended at %d of %d bytes: %w", pos, e.size, io.ErrUnexpectedEOF)
		}
	}
	return n, err
}

func (e *exactReader) Seek(off int64, whence int) (int64, error) { return e.r.Seek(off, whence) }

func (e *exactReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := e.r.ReadAt(p, off)
	if err == io.EOF && off+int64(n) < e.size {
		err = fmt.Errorf("body ended at %d of %d bytes: %w", off+int64(n), e.size, io.ErrUnexpectedEOF)
	}
	return n, err
}

// Get implements objstore.Store.
func (s *Store) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	k, err := s.objectKey("get", key)
	if err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d: %w", key, off, objstore.ErrInvalidRange)
	}
	if n == 0 {
		// No byte range means "nothing": still report a missing object or
		// an impossible offset like a real read would.
		if _, err := s.emptyRange(ctx, key, off); err != nil {
			return nil, err
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	if n > 0 && off > math.MaxInt64-n {
		n = -1 // "to the end" in a form that cannot overflow below
	}
	in := &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: k}
	switch {
	case n > 0:
		in.Range = aws.String("bytes=" + strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(off+n-1, 10))
	case off > 0:
		in.Range = aws.String("bytes=" + strconv.FormatInt(off, 10) + "-")
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		if isInvalidRange(err) {
			return s.emptyRange(ctx, key, off)
		}
		return nil, fmt.Errorf("get %s: %w", key, s.mapErr(err))
	}
	if in.Range != nil && out.ContentRange == nil {
		// A server that ignored Range sent the whole object: cut it here
		// rather than hand out the wrong bytes.
		if _, err := io.CopyN(io.Discard, out.Body, off); err != nil {
			out.Body.Close()
			return nil, fmt.Errorf("get %s: skipping to %d of a body sent without range: %w", key, off, err)
		}
		if n > 0 {
			return struct {
				io.Reader
				io.Closer
			}{io.LimitReader(out.Body, n), out.Body}, nil
		}
	}
	return out.Body, nil
}

// emptyRange answers a Get whose range holds no bytes: off == size is an
// empty body, off > size is ErrInvalidRange, a missing key ErrNotFound.
func (s *Store) emptyRange(ctx context.Context, key string, off int64) (io.ReadCloser, error) {
	info, err := s.Head(ctx, key)
	if err != nil {
		return nil, err
	}
	if _, err := objstore.CheckRange(key, off, 0, info.Size); err != nil {
		return nil, err
	}
	return io.NopCloser(strings.NewReader("")), nil
}

// Head implements objstore.Store.
func (s *Store) Head(ctx context.Context, key string) (objstore.ObjectInfo, error) {
	k, err := s.objectKey("head", key)
	if err != nil {
		return objstore.ObjectInfo{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: k})
	if err != nil {
		return objstore.ObjectInfo{}, fmt.Errorf("head %s: %w", key, s.mapErr(err))
	}
	return objstore.ObjectInfo{Key: key, Size: aws.ToInt64(out.ContentLength), LastModified: aws.ToTime(out.LastModified)}, nil
}

// Delete implements objstore.Store.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	objKeys := make([]string, len(keys))
	for i, key := range keys {
		k, err := s.objectKey("delete", key)
		if err != nil {
			return err
		}
		objKeys[i] = *k
	}
	for len(objKeys) > 0 {
		batch := objKeys[:min(len(objKeys), deleteBatch)]
		objKeys = objKeys[len(batch):]
		if !s.noBatchDelete.Load() {
			err := s.deleteBatch(ctx, batch)
			if err == nil {
				continue
			}
			if !isBatchDeleteUnsupported(err) {
				return err
			}
			s.noBatchDelete.Store(true)
			s.log.Warn("server rejects DeleteObjects; deleting one key per request from now on", "err", err)
		}
		if err := s.deleteEach(ctx, batch); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) deleteBatch(ctx context.Context, objKeys []string) error {
	ids := make([]types.ObjectIdentifier, len(objKeys))
	for i := range objKeys {
		ids[i] = types.ObjectIdentifier{Key: aws.String(objKeys[i])}
	}
	out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
		Bucket: aws.String(s.bucket),
		Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
	})
	if err != nil {
		return fmt.Errorf("delete %d keys from %s: %w", len(objKeys), objKeys[0], s.mapErr(err))
	}
	for _, e := range out.Errors {
		if aws.ToString(e.Code) == "NoSuchKey" {
			continue
		}
		return fmt.Errorf("delete %s: %s: %s", strings.TrimPrefix(aws.ToString(e.Key), s.prefix), aws.ToString(e.Code), aws.ToString(e.Message))
	}
	return nil
}

// deleteEach deletes keys one request at a time, a few in parallel.
func (s *Store) deleteEach(ctx context.Context, objKeys []string) error {
	const workers = 8
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	ch := make(chan string)
	for range min(workers, len(objKeys)) {
		wg.Go(func() {
			for k := range ch {
				_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(k)})
				if err != nil && !errors.Is(s.mapErr(err), objstore.ErrNotFound) {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("delete %s: %w", strings.TrimPrefix(k, s.prefix), s.mapErr(err))
					}
					mu.Unlock()
				}
			}
		})
	}
	for _, k := range objKeys {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			break
		}
		ch <- k
	}
	close(ch)
	wg.Wait()
	return firstErr
}

// List implements objstore.Store.
func (s *Store) List(ctx context.Context, prefix string, fn func(objstore.ObjectInfo) error) error {
	p := s.prefix + prefix
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(p),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list %q: %w", prefix, s.mapErr(err))
		}
		for _, obj := range page.Contents {
			full := aws.ToString(obj.Key)
			key, ok := strings.CutPrefix(full, s.prefix)
			// Directory markers ("a/") written by other tools are not
			// objects of ours.
			if !ok || strings.HasSuffix(key, "/") || key == "" {
				continue
			}
			if err := fn(objstore.ObjectInfo{Key: key, Size: aws.ToInt64(obj.Size), LastModified: aws.ToTime(obj.LastModified)}); err != nil {
				return err
			}
		}
	}
	return nil
}

// mapErr turns "no such key" answers into objstore.ErrNotFound, keeping the
// SDK error (and so the context error of a canceled request) in the chain.
func (s *Store) mapErr(err error) error {
	if isNotFound(err) {
		return fmt.Errorf("%w (%w)", objstore.ErrNotFound, err)
	}
	return err
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	switch apiCode(err) {
	case "NoSuchKey", "NotFound":
		return true
	case "NoSuchBucket":
		// A missing bucket is a configuration error, not a missing object:
		// treating it as "not found" would make tiered data look deleted.
		return false
	}
	// HEAD answers carry no body, so a 404 has no code to tell a missing
	// bucket from a missing key; the first GET or PUT will say which.
	return httpStatus(err) == http.StatusNotFound
}

func isInvalidRange(err error) bool {
	return apiCode(err) == "InvalidRange" || httpStatus(err) == http.StatusRequestedRangeNotSatisfiable
}

func isBatchDeleteUnsupported(err error) bool {
	switch apiCode(err) {
	case "NotImplemented", "MethodNotAllowed", "MissingContentMD5":
		return true
	}
	switch httpStatus(err) {
	case http.StatusNotImplemented, http.StatusMethodNotAllowed:
		return true
	}
	return false
}
