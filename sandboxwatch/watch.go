// Package sandboxwatch reports the pod sandboxes of containerd's CRI as soon
// as the CRI creates their pause container. NRI's RunPodSandbox comes only
// after the pause task has started, which takes containerd tens of
// milliseconds more, so work started here runs while that task starts.
package sandboxwatch

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"time"

	eventsapi "github.com/containerd/containerd/api/events"
	containers "github.com/containerd/containerd/api/services/containers/v1"
	events "github.com/containerd/containerd/api/services/events/v1"
	versionapi "github.com/containerd/containerd/api/services/version/v1"
	"github.com/containerd/nri/pkg/api"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
)

// Namespace is the containerd namespace of the CRI's containers.
const Namespace = "k8s.io"

// Event topics of the pause containers.
const (
	topicCreate = "/containers/create"
	topicDelete = "/containers/delete"
)

// Reconnect timing: the first retry after minBackoff, doubling up to
// maxBackoff, and back to minBackoff after stablePeriod connected.
const (
	minBackoff   = 500 * time.Millisecond
	maxBackoff   = 5 * time.Second
	stablePeriod = 30 * time.Second
	// requestTimeout bounds one lookup of a container.
	requestTimeout = 5 * time.Second
	// warnEvery is how many failed connects in a row log one warning: about
	// one every 5 minutes at maxBackoff.
	warnEvery = 60
)

// Handler receives the pod sandboxes that the CRI creates and deletes.
// Calls come one at a time and must not block.
type Handler interface {
	// Subscribed is called each time the events start, or start again
	// after containerd restarted, maybe as another containerd.
	Subscribed()
	// SandboxCreated is called with the pod of a new pause container.
	SandboxCreated(pod *api.PodSandbox)
	// SandboxDeleted is called with the ID of a deleted container, which
	// may be one of a pod sandbox.
	SandboxDeleted(id string)
}

// Watcher follows the container events of containerd's CRI.
type Watcher struct {
	socket  string
	handler Handler
	log     *zap.Logger
}

// New returns a Watcher of the containerd at socket.
func New(socket string, handler Handler, log *zap.Logger) *Watcher {
	return &Watcher{socket: socket, handler: handler, log: log}
}

// Run follows the events until ctx ends, and connects again with backoff
// whenever the connection fails, as it does while containerd restarts.
// Events that come while it is not connected are missed, so a handler must
// not depend on them.
func (w *Watcher) Run(ctx context.Context) {
	backoff := minBackoff
	for failures := 1; ; failures++ {
		started := time.Now()
		err := w.watch(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) >= stablePeriod {
			backoff, failures = minBackoff, 1
		}
		// The first failure of a streak is a warning, and so is every
		// warnEvery-th after it, so that a wrong path stays visible.
		log := w.log.Debug
		if failures%warnEvery == 1 {
			log = w.log.Warn
		}
		delay := backoff/2 + rand.N(backoff/2+1)
		log("not following containerd's sandboxes; pods attach at RunPodSandbox until it connects",
			zap.String("socket", w.socket), zap.Int("attempt", failures), zap.Duration("retryIn", delay),
			zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// watch follows the events over one connection until it fails.
func (w *Watcher) watch(ctx context.Context) error {
	if info, err := os.Stat(w.socket); err == nil && info.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("%s is not a socket (mode %s): set containerdSocket to containerd's grpc.address, "+
			"or to \"\" to turn the early attach off", w.socket, info.Mode())
	}
	conn, err := grpc.NewClient("passthrough:///"+w.socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", w.socket)
		}))
	if err != nil {
		return fmt.Errorf("failed to set up a client of %s: %w", w.socket, err)
	}
	defer conn.Close()

	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(ctx, "containerd-namespace", Namespace))
	defer cancel()
	// A subscription returns nothing until the first event, so a version
	// request first checks that containerd responds on the socket.
	vctx, vcancel := context.WithTimeout(ctx, requestTimeout)
	version, err := versionapi.NewVersionClient(conn).Version(vctx, &emptypb.Empty{})
	vcancel()
	if err != nil {
		return fmt.Errorf("failed to reach containerd at %s: %w", w.socket, err)
	}
	stream, err := events.NewEventsClient(conn).Subscribe(ctx, &events.SubscribeRequest{
		Filters: []string{
			fmt.Sprintf("namespace==%s,topic==%q", Namespace, topicCreate),
			fmt.Sprintf("namespace==%s,topic==%q", Namespace, topicDelete),
		},
	})
	if err != nil {
		return fmt.Errorf("failed to subscribe to the events of %s: %w", w.socket, err)
	}
	w.log.Info("following containerd's sandboxes", zap.String("socket", w.socket),
		zap.String("containerdVersion", version.GetVersion()))
	w.handler.Subscribed()

	client := containers.NewContainersClient(conn)
	for {
		envelope, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("lost the events of %s: %w", w.socket, err)
		}
		if envelope.GetNamespace() != Namespace || envelope.GetEvent() == nil {
			continue
		}
		switch envelope.GetTopic() {
		case topicCreate:
			var event eventsapi.ContainerCreate
			if err := proto.Unmarshal(envelope.GetEvent().GetValue(), &event); err != nil {
				w.log.Warn("failed to decode container event", zap.String("topic", topicCreate), zap.Error(err))
				continue
			}
			w.created(ctx, client, event.GetID())
		case topicDelete:
			var event eventsapi.ContainerDelete
			if err := proto.Unmarshal(envelope.GetEvent().GetValue(), &event); err != nil {
				w.log.Warn("failed to decode container event", zap.String("topic", topicDelete), zap.Error(err))
				continue
			}
			w.handler.SandboxDeleted(event.GetID())
		}
	}
}

// created looks up a new container and hands it over when it is a pause
// container.
func (w *Watcher) created(ctx context.Context, client containers.ContainersClient, id string) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := client.Get(ctx, &containers.GetContainerRequest{ID: id})
	if err != nil {
		// A container deleted at once, such as a failed one, is not found.
		w.log.Debug("failed to look up new container", zap.String("containerID", id), zap.Error(err))
		return
	}
	pod, err := Decode(resp.GetContainer())
	if err != nil {
		w.log.Warn("failed to read pod sandbox; it attaches at RunPodSandbox", zap.Error(err))
		return
	}
	if pod != nil {
		w.handler.SandboxCreated(pod)
	}
}
