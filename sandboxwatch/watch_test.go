package sandboxwatch

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	eventsapi "github.com/containerd/containerd/api/events"
	containers "github.com/containerd/containerd/api/services/containers/v1"
	events "github.com/containerd/containerd/api/services/events/v1"
	versionapi "github.com/containerd/containerd/api/services/version/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/nri/pkg/api"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
)

// fakeContainerd serves the three containerd services that a Watcher uses.
type fakeContainerd struct {
	versionapi.UnimplementedVersionServer
	events.UnimplementedEventsServer
	containers.UnimplementedContainersServer

	containers map[string]*containers.Container

	mu sync.Mutex
	// envelopes feeds the next subscription; closing it ends that one.
	envelopes chan *types.Envelope
	// namespaces records the containerd namespace of each request.
	namespaces    []string
	subscriptions int
}

func (f *fakeContainerd) subscribed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.subscriptions
}

// replaceEnvelopes gives later subscriptions a new channel and returns the
// old one.
func (f *fakeContainerd) replaceEnvelopes() chan *types.Envelope {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.envelopes
	f.envelopes = make(chan *types.Envelope, 8)
	return old
}

func (f *fakeContainerd) recordNamespace(ctx context.Context) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.namespaces = append(f.namespaces, md.Get("containerd-namespace")...)
}

func (f *fakeContainerd) Version(ctx context.Context, _ *emptypb.Empty) (*versionapi.VersionResponse, error) {
	return &versionapi.VersionResponse{Version: "v2.4.2-fake"}, nil
}

func (f *fakeContainerd) Subscribe(_ *events.SubscribeRequest, stream events.Events_SubscribeServer) error {
	f.recordNamespace(stream.Context())
	f.mu.Lock()
	envelopes := f.envelopes
	f.subscriptions++
	f.mu.Unlock()
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case envelope, ok := <-envelopes:
			if !ok {
				return status.Error(codes.Unavailable, "shutting down")
			}
			if err := stream.Send(envelope); err != nil {
				return err
			}
		}
	}
}

func (f *fakeContainerd) Get(ctx context.Context, req *containers.GetContainerRequest) (*containers.GetContainerResponse, error) {
	f.recordNamespace(ctx)
	ctr, ok := f.containers[req.GetID()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "container %q: not found", req.GetID())
	}
	return &containers.GetContainerResponse{Container: ctr}, nil
}

func serveFake(t *testing.T, fake *fakeContainerd) string {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "containerd.sock")
	listener, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer()
	versionapi.RegisterVersionServer(server, fake)
	events.RegisterEventsServer(server, fake)
	containers.RegisterContainersServer(server, fake)
	go server.Serve(listener)
	t.Cleanup(server.Stop)
	return socket
}

func containerEvent(t *testing.T, namespace, topic, id string) *types.Envelope {
	t.Helper()
	var value *anypb.Any
	var err error
	switch topic {
	case topicCreate:
		value, err = anypb.New(&eventsapi.ContainerCreate{ID: id})
	default:
		value, err = anypb.New(&eventsapi.ContainerDelete{ID: id})
	}
	if err != nil {
		t.Fatal(err)
	}
	return &types.Envelope{Namespace: namespace, Topic: topic, Event: value}
}

// recordingHandler records what a Watcher hands over.
type recordingHandler struct {
	created chan *api.PodSandbox
	deleted chan string
}

func (h *recordingHandler) Subscribed()                        {}
func (h *recordingHandler) SandboxCreated(pod *api.PodSandbox) { h.created <- pod }
func (h *recordingHandler) SandboxDeleted(id string)           { h.deleted <- id }

func TestWatcherHandsOverPauseContainers(t *testing.T) {
	fake := &fakeContainerd{
		envelopes: make(chan *types.Envelope, 8),
		containers: map[string]*containers.Container{
			"pod1": pauseContainer(t, "v1", criMetadata{ID: "pod1", Config: podConfig(), NetNSPath: "/var/run/netns/cni-1"}),
			"app1": {ID: "app1", Labels: map[string]string{kindLabel: "container"}},
		},
	}
	socket := serveFake(t, fake)
	handler := &recordingHandler{created: make(chan *api.PodSandbox, 8), deleted: make(chan string, 8)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go New(socket, handler, zap.NewNop()).Run(ctx)

	for _, e := range []*types.Envelope{
		containerEvent(t, "moby", topicCreate, "pod1"),
		containerEvent(t, Namespace, topicCreate, "app1"),
		containerEvent(t, Namespace, topicCreate, "gone"),
		containerEvent(t, Namespace, topicCreate, "pod1"),
		containerEvent(t, Namespace, topicDelete, "pod1"),
	} {
		fake.envelopes <- e
	}

	select {
	case pod := <-handler.created:
		if pod.GetId() != "pod1" || pod.GetName() != "web" {
			t.Errorf("created pod = %v, want pod1 named web", pod)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pod handed over within 5s")
	}
	select {
	case id := <-handler.deleted:
		if id != "pod1" {
			t.Errorf("deleted %q, want pod1", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no delete handed over within 5s")
	}
	select {
	case pod := <-handler.created:
		t.Errorf("handed over %v too, want only pod1 of namespace %s", pod, Namespace)
	default:
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	for _, ns := range fake.namespaces {
		if ns != Namespace {
			t.Errorf("request in containerd namespace %q, want %s", ns, Namespace)
		}
	}
}

func TestWatcherReconnects(t *testing.T) {
	fake := &fakeContainerd{
		envelopes: make(chan *types.Envelope, 1),
		containers: map[string]*containers.Container{
			"pod1": pauseContainer(t, "v1", criMetadata{ID: "pod1", Config: podConfig(), NetNSPath: "/var/run/netns/cni-1"}),
		},
	}
	socket := serveFake(t, fake)
	handler := &recordingHandler{created: make(chan *api.PodSandbox, 8), deleted: make(chan string, 8)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go New(socket, handler, zap.NewNop()).Run(ctx)

	// Closing the stream ends the subscription, as a containerd restart
	// does, and the next subscription reads the new channel.
	for deadline := time.Now().Add(5 * time.Second); fake.subscribed() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the watcher did not subscribe within 5s")
		}
	}
	first := fake.replaceEnvelopes()
	close(first)
	fake.mu.Lock()
	fake.envelopes <- containerEvent(t, Namespace, topicCreate, "pod1")
	fake.mu.Unlock()
	select {
	case pod := <-handler.created:
		if pod.GetId() != "pod1" {
			t.Errorf("created pod = %v, want pod1", pod)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no pod handed over within 10s of the new subscription")
	}
	if got := fake.subscribed(); got != 2 {
		t.Errorf("subscriptions = %d, want 2: the first and one after it ended", got)
	}
}
