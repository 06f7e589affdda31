// Records of what the local mesh created (namespaces, interfaces, files, processes), so
// `make mesh-down` removes exactly that and nothing else, and `make mesh-up` can tell what is
// still running. A process is recorded with its start time (from /proc), so a recycled pid is
// never mistaken for ours.
package mesh

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Proc is one process the mesh started.
type Proc struct {
	Pid       int    `json:"pid"`
	StartTime uint64 `json:"start_time"` // /proc/<pid>/stat field 22
	Command   string `json:"command"`
	Log       string `json:"log"`
}

// State is the record, kept in <state dir>/state.json.
type State struct {
	path     string
	Bridge   string           `json:"bridge,omitempty"`
	Netns    []string         `json:"netns,omitempty"`
	Veths    []string         `json:"veths,omitempty"`
	EtcNetns []string         `json:"etc_netns,omitempty"`
	RunDir   string           `json:"run_dir,omitempty"`
	Cgroups  []string         `json:"cgroups,omitempty"` // parents before children (cpu.go)
	Procs    map[string]*Proc `json:"procs,omitempty"`   // "control-plane", "<ns>/<pod>/envoy", "<ns>/<pod>/app"
}

// LoadState reads the record (an empty one when there is none).
func LoadState(path string) (*State, error) {
	st := &State{path: path, Procs: map[string]*Proc{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if st.Procs == nil {
		st.Procs = map[string]*Proc{}
	}
	return st, nil
}

// Save writes the record atomically.
func (s *State) Save() error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, s.path)
}

// Empty reports whether nothing is recorded.
func (s *State) Empty() bool {
	return s.Bridge == "" && len(s.Netns) == 0 && len(s.Veths) == 0 && len(s.EtcNetns) == 0 && s.RunDir == "" &&
		len(s.Procs) == 0 && len(s.Cgroups) == 0
}

// ProcKeys returns the recorded process keys, sorted.
func (s *State) ProcKeys() []string {
	keys := make([]string, 0, len(s.Procs))
	for k := range s.Procs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Alive reports whether the recorded process still runs (same pid and start time, not a zombie).
func (p *Proc) Alive() bool {
	if p == nil || p.Pid <= 0 {
		return false
	}
	st, state, err := procStart(p.Pid)
	return err == nil && st == p.StartTime && state != "Z" && state != "X"
}

// procStart reads a process's start time and state from /proc/<pid>/stat.
func procStart(pid int) (uint64, string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", err
	}
	// The command name may contain spaces: fields start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, "", fmt.Errorf("pid %d: unexpected stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, "", fmt.Errorf("pid %d: unexpected stat", pid)
	}
	st, err := strconv.ParseUint(f[19], 10, 64)
	return st, f[0], err
}

// closeInheritedOnExec marks every descriptor this process inherited (beyond stdio) close-on-exec,
// so the long-lived processes it starts do not keep its caller's files open: a `flock` lock
// held around `make mesh-up`, make's jobserver pipes.
var closeInheritedOnExec = sync.OnceFunc(func() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
})

// Spawn starts a detached process (its own session, outliving the command that started it)
// with stdout and stderr appended to logPath, owned by logOwner (uid; -1 keeps root's).
func Spawn(argv, env []string, logPath string, logOwner int) (*Proc, error) {
	closeInheritedOnExec()
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if logOwner >= 0 {
		if err := f.Chown(logOwner, logOwner); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	pid := cmd.Process.Pid
	// Reap it if it dies while we are still running; after we exit, init does.
	go func() { _ = cmd.Wait() }()
	var st uint64
	for i := 0; i < 50; i++ {
		if st, _, err = procStart(pid); err == nil {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("%s exited at once (see %s)", argv[0], logPath)
	}
	return &Proc{Pid: pid, StartTime: st, Command: strings.Join(argv, " "), Log: logPath}, nil
}

// Stop sends SIGTERM, waits up to grace, then SIGKILL. Only a recorded, still-matching process
// is signalled.
func (p *Proc) Stop(grace time.Duration) {
	if !p.Alive() {
		return
	}
	_ = syscall.Kill(p.Pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !p.Alive() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	if p.Alive() {
		_ = syscall.Kill(p.Pid, syscall.SIGKILL)
		for i := 0; i < 100 && p.Alive(); i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// RSSKiB is the process's resident set size.
func (p *Proc) RSSKiB() int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.Atoi(f[0])
				return n
			}
		}
	}
	return 0
}
