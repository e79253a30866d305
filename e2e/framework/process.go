package framework

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Process is a program that an environment started and stops by its PID.
// Its stdout and stderr go to LogPath.
type Process struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

func startProcess(name, logPath string, env []string, program string, args ...string) (*Process, error) {
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("failed to create log file of %s: %w", name, err)
	}
	cmd := exec.Command(program, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = env
	// A process group of its own keeps a Ctrl-C in the terminal from
	// killing the process before cleanup has used it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("failed to start %s (%s): %w", name, program, err)
	}
	logFile.Close()

	process := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		process.waitErr = cmd.Wait()
		close(process.done)
	}()
	return process, nil
}

// PID returns the process ID.
func (p *Process) PID() int {
	return p.cmd.Process.Pid
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits up to timeout for the process to exit and returns its exit
// code, or an error when it is still running.
func (p *Process) Wait(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), nil
	case <-time.After(timeout):
		return 0, fmt.Errorf("%s (PID %d) still runs after %s", p.Name, p.PID(), timeout)
	}
}

// Stop sends SIGTERM and, when the process is still running after timeout,
// SIGKILL. It returns an error when the process exited with a non-zero
// status after SIGTERM, or had to be killed.
func (p *Process) Stop(timeout time.Duration) error {
	if p.Exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("failed to send SIGTERM to %s (PID %d): %w", p.Name, p.PID(), err)
	}
	select {
	case <-p.done:
		var exitErr *exec.ExitError
		if errors.As(p.waitErr, &exitErr) {
			return fmt.Errorf("%s (PID %d) exited after SIGTERM with %s", p.Name, p.PID(), exitErr.ProcessState)
		}
		return nil
	case <-time.After(timeout):
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("failed to kill %s (PID %d): %w", p.Name, p.PID(), err)
	}
	<-p.done
	return fmt.Errorf("%s (PID %d) did not stop within %s of SIGTERM and was killed", p.Name, p.PID(), timeout)
}

// Log returns what the process wrote so far.
func (p *Process) Log() string {
	content, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(failed to read log of %s: %v)", p.Name, err)
	}
	return string(content)
}

// logTail returns the last lines of the log for error messages.
func (p *Process) logTail(lines int) string {
	all := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// killPID sends SIGKILL to a process that the environment started
// indirectly, such as a containerd shim, and waits up to a second for it to
// go away.
func killPID(pid int) error {
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return fmt.Errorf("failed to kill PID %d: %w", pid, err)
	}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}
