package framework

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
)

// errProgramStop unwinds a Program's body after a fatal failure was printed.
var errProgramStop = errors.New("program stopped")

// Program is the T of a command that runs environments outside go test, such
// as the demo, the soak and the benchmark. Errorf prints and marks the run
// failed, Fatalf and Skipf also stop it, and the cleanups run when Run ends.
// Every method is safe for concurrent use, but Fatalf and Skipf stop the run
// only when called from the goroutine of Run's body.
type Program struct {
	// Name prefixes the program's error messages.
	Name string
	// Verbose prints the framework's messages, such as every crictl call.
	Verbose bool
	// LogsAfterFailure prints the framework's messages once a failure was
	// reported, when they carry the process logs, also without Verbose.
	LogsAfterFailure bool
	// CleanupMessage is printed before the cleanups run, when there are any.
	CleanupMessage string

	interrupted atomic.Bool

	mu       sync.Mutex
	failed   bool
	cleanups []func()
}

// Helper does nothing: a program has no test lines to skip.
func (p *Program) Helper() {}

// Logf prints a framework message, indented, when Verbose is set or when
// LogsAfterFailure is set and a failure was reported.
func (p *Program) Logf(format string, args ...any) {
	p.mu.Lock()
	show := p.Verbose || (p.LogsAfterFailure && p.failed)
	p.mu.Unlock()
	if show {
		p.print(os.Stdout, "    "+format, args...)
	}
}

// Progressf prints a step of the program.
func (p *Program) Progressf(format string, args ...any) {
	p.print(os.Stdout, format, args...)
}

// Errorf prints an error and marks the run failed.
func (p *Program) Errorf(format string, args ...any) {
	p.print(os.Stderr, p.Name+": "+format, args...)
	p.mu.Lock()
	p.failed = true
	p.mu.Unlock()
}

// Fatalf prints an error, marks the run failed and stops it.
func (p *Program) Fatalf(format string, args ...any) {
	p.Errorf(format, args...)
	panic(errProgramStop)
}

// Skipf prints why the program cannot run and stops it as failed.
func (p *Program) Skipf(format string, args ...any) {
	p.Errorf("cannot run: "+format, args...)
	panic(errProgramStop)
}

// Failed reports whether an error was reported, so that the framework
// prints the process logs before it removes them.
func (p *Program) Failed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed
}

// Cleanup registers f to run when Run ends.
func (p *Program) Cleanup(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cleanups = append(p.cleanups, f)
}

// StopOnSignal makes SIGINT and SIGTERM request a stop: the program prints
// message and stops at its next CheckInterrupt, so that its cleanups run.
func (p *Program) StopOnSignal(message string) {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-signals
		p.print(os.Stderr, p.Name+": "+message)
		p.interrupted.Store(true)
	}()
}

// Interrupted reports whether a signal requested a stop.
func (p *Program) Interrupted() bool {
	return p.interrupted.Load()
}

// CheckInterrupt stops the run between two steps after a signal.
func (p *Program) CheckInterrupt() {
	if p.Interrupted() {
		p.Fatalf("interrupted")
	}
}

// Run runs body, then the cleanups, newest first, and returns the exit
// code: body's, or 1 when the run failed or was stopped.
func (p *Program) Run(body func() int) int {
	code := p.runBody(body)
	p.runCleanups()
	if p.Failed() {
		code = 1
	}
	return code
}

func (p *Program) runBody(body func() int) (code int) {
	defer func() {
		if recovered := recover(); recovered != nil {
			if recovered != errProgramStop {
				panic(recovered)
			}
			code = 1
		}
	}()
	return body()
}

func (p *Program) runCleanups() {
	p.mu.Lock()
	cleanups := p.cleanups
	p.cleanups = nil
	p.mu.Unlock()
	if len(cleanups) > 0 && p.CleanupMessage != "" {
		p.Progressf("%s", p.CleanupMessage)
	}
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
}

func (p *Program) print(file *os.File, format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(file, format+"\n", args...)
}
