package vault

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pdvault/pdvault/policy"
)

// Import job states.
const (
	jobUploading = "uploading" // the file is arriving and being sealed
	jobImporting = "importing" // the importer reads the sealed copy
	jobDone      = "done"
	jobFailed    = "failed"
)

// ImportJob is what the owner sees of an import while it runs and after.
type ImportJob struct {
	ID     string `json:"id"`
	File   string `json:"file"`
	Format string `json:"format,omitempty"`
	State  string `json:"state"`
	// Bytes is how much of the file has arrived (uploading) or has been
	// read by the importer (importing); Total is its size when known.
	Bytes    int64         `json:"bytes"`
	Total    int64         `json:"total,omitempty"`
	Items    int64         `json:"items"` // items the importer has found so far
	Started  time.Time     `json:"started"`
	Finished *time.Time    `json:"finished,omitempty"`
	Result   *ImportResult `json:"result,omitempty"`
	// Err is why a failed import failed (a policy error, safe to show).
	Err error `json:"-"`
}

// maxImportJobs bounds the jobs remembered (finished ones are forgotten
// oldest first) and maxRunningImports those under way: imports take the
// one writer in turn, so more would only wait, each holding a staged file.
const (
	maxImportJobs     = 32
	maxRunningImports = 4
)

// ErrTooManyImports refuses an import while others are still running.
var ErrTooManyImports = policy.E(policy.KindThrottled, "too_many_imports", "four imports are running; wait for one to finish")

// ErrImportNotFound is an unknown or forgotten import job.
var ErrImportNotFound = policy.E(policy.KindNotFound, "not_found", "no such import")

type importJob struct {
	mu      sync.Mutex
	job     ImportJob
	bytes   atomic.Int64
	total   atomic.Int64
	records atomic.Int64
	now     func() time.Time
}

func (j *importJob) setState(state, format string) {
	j.mu.Lock()
	j.job.State, j.job.Format = state, format
	j.mu.Unlock()
}

func (j *importJob) finish(res ImportResult, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	t := j.now()
	j.job.Finished = &t
	if err != nil {
		j.job.State, j.job.Err = jobFailed, err
		return
	}
	j.job.State, j.job.Result = jobDone, &res
}

func (j *importJob) snapshot() ImportJob {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.job
	s.Bytes, s.Total, s.Items = j.bytes.Load(), j.total.Load(), j.records.Load()
	return s
}

// importJobs remembers recent imports for progress and waits for the
// running ones when the vault closes.
type importJobs struct {
	mu      sync.Mutex
	jobs    []*importJob // oldest first
	running int
	closed  bool
	wg      sync.WaitGroup
	ctx     context.Context // background imports stop when the vault closes
	cancel  context.CancelFunc
}

func (v *Vault) initImports() {
	v.imports.ctx, v.imports.cancel = context.WithCancel(context.Background())
}

func (js *importJobs) add(file string, size int64, now func() time.Time) (*importJob, error) {
	js.mu.Lock()
	defer js.mu.Unlock()
	if js.closed || js.ctx == nil {
		return nil, ErrLocked
	}
	if js.running >= maxRunningImports {
		return nil, ErrTooManyImports
	}
	j := &importJob{now: now, job: ImportJob{ID: newID(), File: file, State: jobUploading, Started: now()}}
	j.total.Store(max(size, 0))
	// Forget the oldest finished job when full (running ones are at most
	// maxRunningImports, so one is always finished).
	if len(js.jobs) >= maxImportJobs {
		for i, old := range js.jobs {
			if s := old.snapshot().State; s == jobDone || s == jobFailed {
				js.jobs = append(js.jobs[:i], js.jobs[i+1:]...)
				break
			}
		}
	}
	js.jobs = append(js.jobs, j)
	js.running++
	js.wg.Add(1)
	return j, nil
}

// release marks one import as no longer running.
func (js *importJobs) release() {
	js.mu.Lock()
	js.running--
	js.mu.Unlock()
	js.wg.Done()
}

// stop cancels the background imports and waits for them.
func (js *importJobs) stop() {
	js.mu.Lock()
	js.closed = true
	if js.cancel != nil {
		js.cancel()
	}
	js.mu.Unlock()
	js.wg.Wait()
}

// ImportJobs lists the recent imports, newest first.
func (v *Vault) ImportJobs() []ImportJob {
	v.imports.mu.Lock()
	jobs := append([]*importJob(nil), v.imports.jobs...)
	v.imports.mu.Unlock()
	out := make([]ImportJob, 0, len(jobs))
	for i := len(jobs) - 1; i >= 0; i-- {
		out = append(out, jobs[i].snapshot())
	}
	return out
}

// ImportJob reports one import.
func (v *Vault) ImportJob(id string) (ImportJob, error) {
	v.imports.mu.Lock()
	defer v.imports.mu.Unlock()
	for _, j := range v.imports.jobs {
		if j.job.ID == id {
			return j.snapshot(), nil
		}
	}
	return ImportJob{}, ErrImportNotFound
}
