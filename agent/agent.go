package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/guix-offload/guix-offload/discovery"
	"github.com/guix-offload/guix-offload/internal/hint"
	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/scm"

	"github.com/guix-offload/guix-offload/internal/boundedread"
)

// Timing of an [Agent] that is not configurable.
const (
	// DefaultInterfacePoll is how often the agent looks for interfaces
	// and addresses that came or went.
	DefaultInterfacePoll = 2 * time.Second
	// DefaultResign is the longest time between two signatures: masters
	// reject announcements older than 10 minutes.
	DefaultResign = 4 * time.Minute
	// LoadStep and FreeDiskStep are the changes worth a new
	// announcement: 0.1 of normalized load, 1% of free space.
	LoadStep     = 0.1
	FreeDiskStep = 0.01
	// KeyRetry is how often an agent without a signing key looks for
	// one again.
	KeyRetry = time.Minute
)

// Agent advertises one build machine. Fill in Config (and, in tests,
// what is injected) and call [Agent.Run]; or use [Run].
type Agent struct {
	Config Config
	// Log receives what the agent does; nil discards it.
	Log *slog.Logger
	// Detector finds what Config leaves unset; nil means the real
	// machine.
	Detector *Detector
	// Announcer advertises; nil means [MDNSAnnouncer].
	Announcer Announcer
	// Interfaces lists the network interfaces; nil means
	// [SystemInterfaces].
	Interfaces func() ([]Iface, error)
	// Hostname returns the default instance name; nil means os.Hostname.
	Hostname func() (string, error)
	// InterfacePoll and Resign default to [DefaultInterfacePoll] and
	// [DefaultResign].
	InterfacePoll time.Duration
	Resign        time.Duration
}

// Plan is what does not change while the agent runs: the configuration
// with detection applied and the keys read. [Agent.Prepare] makes it.
type Plan struct {
	// Instance is the DNS-SD instance name.
	Instance string
	// Host is the SRV target ("builder1-guix-offload.local.").
	Host string
	// Machine holds the announced machines.scm fields; Name is the
	// instance name.
	Machine scm.Machine
	// Store is the directory whose free space is announced.
	Store string
	// Key signs the announcements; nil means unsigned.
	Key *pki.PrivateKey
}

func (a *Agent) logger(component string) *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log.With("component", component)
}

func (a *Agent) detector() *Detector {
	if a.Detector == nil {
		return &Detector{}
	}
	return a.Detector
}

// Prepare validates the configuration, detects what it leaves unset,
// reads the host and signing keys and logs what it found.
func (a *Agent) Prepare() (*Plan, error) {
	cfg := a.Config
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := a.detector()
	log := a.logger("detect")
	source := func(configured bool) string {
		if configured {
			return "configured"
		}
		return "detected"
	}

	p := &Plan{Instance: cfg.Name, Store: cfg.Store}
	if p.Instance == "" {
		hostname := os.Hostname
		if a.Hostname != nil {
			hostname = a.Hostname
		}
		h, err := hostname()
		if err != nil {
			return nil, hint.With(fmt.Errorf("find instance name: %w", err), "set name in the configuration")
		}
		p.Instance, _, _ = strings.Cut(h, ".")
	}
	// Not the plain host name: on a machine whose avahi-daemon already
	// answers for HOST.local with all its addresses, our records for the
	// same name with only the advertised ones would look like a conflict
	// and make avahi-daemon rename the host.
	p.Host = hostLabel(p.Instance) + HostSuffix + ".local."

	m := &p.Machine
	m.Name = p.Instance
	m.Compression = scm.DefaultCompression
	m.CompressionLevel = scm.DefaultCompressionLevel
	m.DaemonSocket = scm.DefaultDaemonSocket
	m.User = cfg.User
	m.Speed = cfg.Speed
	m.OverloadThreshold = cfg.OverloadThreshold.V

	m.Systems = cfg.Systems
	if m.Systems == nil {
		s, err := d.Systems()
		if err != nil {
			return nil, hint.With(fmt.Errorf("detect systems: %w", err), "set systems in the configuration")
		}
		m.Systems = s
	}
	m.Features = cfg.Features
	if m.Features == nil {
		m.Features = d.Features()
	}
	m.ParallelBuilds = cfg.ParallelBuilds
	daemonSeen := true
	if m.ParallelBuilds == 0 {
		n, found := d.MaxJobs()
		if !found {
			n, daemonSeen = 1, false
		}
		m.ParallelBuilds = n
	}
	m.Port = cfg.Port
	if m.Port == 0 {
		m.Port = d.SSHPort()
	}

	keyFile := cfg.HostKeyFile
	if keyFile == "" {
		f, err := d.HostKeyFile()
		if err != nil {
			return nil, hint.With(fmt.Errorf("find SSH host key: %w", err),
				"install and start OpenSSH's sshd (ssh-keygen -A makes host keys), or set host-key-file")
		}
		keyFile = f
	}
	hostKey, err := readHostKey(keyFile)
	if err != nil {
		return nil, hint.With(err, "set host-key-file to the host's OpenSSH public key (…/ssh_host_ed25519_key.pub)")
	}
	m.HostKey = hostKey

	log.Info("build machine",
		"instance", p.Instance,
		"systems", strings.Join(m.Systems, ","), "systems-from", source(cfg.Systems != nil),
		"features", strings.Join(m.Features, ","), "features-from", source(cfg.Features != nil),
		"parallel-builds", m.ParallelBuilds, "parallel-builds-from", source(cfg.ParallelBuilds != 0),
		"speed", m.Speed, "user", m.User,
		"port", m.Port, "port-from", source(cfg.Port != 0),
		"overload-threshold", cfg.OverloadThreshold.String(),
		"host-key-file", keyFile)
	if !daemonSeen {
		log.Info("no guix-daemon command line found; announcing parallel-builds 1")
	}
	if !d.UserExists(m.User) {
		log.Warn("SSH user does not exist on this machine; masters will fail to log in", "user", m.User,
			"hint", "create the user or set user in the configuration")
	}

	key, err := pki.ReadPrivateKey(cfg.SigningKey)
	switch {
	case err == nil:
		p.Key = key
		log.Info("signing announcements", "signing-key", cfg.SigningKey, "key", key.Public().String())
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission):
		log.Warn("no signing key readable: announcements go out unsigned, and masters with the default trust policy will ignore this machine",
			"signing-key", cfg.SigningKey, "error", err,
			"hint", "run 'guix archive --generate-key' (as root), or set signing-key")
	default:
		return nil, hint.With(fmt.Errorf("signing key: %w", err),
			"signing-key must be a Guix secret key such as /etc/guix/signing-key.sec")
	}
	// Fail now, not on every refresh, when the fields cannot fit in a
	// TXT record whatever the load and addresses.
	if _, err := p.compose(nil, sample{load: 99.99, freeDisk: 1 << 40}, time.Now()); err != nil {
		return nil, hint.With(err, "shorten the lists in the configuration (each TXT string holds 255 bytes)")
	}
	return p, nil
}

// readHostKey reads an OpenSSH public key file (or PATH.pub for a private
// key PATH) and returns the key as "TYPE BASE64", without comment.
func readHostKey(path string) (string, error) {
	b, err := boundedread.ReadFile(path, boundedread.Key)
	if err == nil && strings.HasPrefix(string(b), "-----BEGIN") {
		path += ".pub"
		b, err = boundedread.ReadFile(path, boundedread.Key)
	}
	if err != nil {
		return "", fmt.Errorf("read SSH host key: %w", err)
	}
	pk, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return "", fmt.Errorf("read SSH host key %s: %w", path, err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk))), nil
}

// sample is what changes while the agent runs.
type sample struct {
	load     float64 // discovery.Unknown when unknown
	freeDisk int64   // discovery.Unknown when unknown
}

// meaningful reports whether cur differs enough from sent to be worth an
// announcement.
func meaningful(sent, cur sample) bool {
	if (sent.load < 0) != (cur.load < 0) || (sent.freeDisk < 0) != (cur.freeDisk < 0) {
		return true
	}
	if math.Abs(cur.load-sent.load) >= LoadStep-1e-9 {
		return true
	}
	if sent.freeDisk >= 0 {
		diff := math.Abs(float64(cur.freeDisk - sent.freeDisk))
		if diff >= FreeDiskStep*float64(sent.freeDisk) && diff > 0 {
			return true
		}
	}
	return false
}

// measure reads the load and free disk, logging a failure once per kind
// (warned keeps track).
func (a *Agent) measure(p *Plan, warned map[string]bool) sample {
	d := a.detector()
	log := a.logger("detect")
	s := sample{load: discovery.Unknown, freeDisk: discovery.Unknown}
	if l, err := d.Load(); err == nil {
		s.load = math.Round(l*100) / 100
		warned["load"] = false
	} else if !warned["load"] {
		log.Warn("cannot measure the load; announcing none", "error", err)
		warned["load"] = true
	}
	if f, err := d.FreeDisk(p.Store); err == nil {
		s.freeDisk = f
		warned["free-disk"] = false
	} else if !warned["free-disk"] {
		log.Warn("cannot measure free store space; announcing none", "error", err, "hint", "set store to the store directory")
		warned["free-disk"] = true
	}
	return s
}

// compose returns the announcement of p on addrs with s, at now, signed
// when p has a key.
func (p *Plan) compose(addrs []netip.Addr, s sample, now time.Time) (*discovery.Announcement, error) {
	ann := &discovery.Announcement{
		Machine:   p.Machine,
		Instance:  p.Instance,
		Addresses: addrs,
		Load:      s.load,
		FreeDisk:  s.freeDisk,
		Time:      now.Truncate(time.Second),
	}
	if p.Key != nil {
		if err := ann.Sign(p.Key); err != nil {
			return nil, err
		}
	} else if err := ann.Check(); err != nil {
		return nil, fmt.Errorf("compose announcement: %w", err)
	}
	return ann, nil
}

func (a *Agent) interfaces() ([]Iface, error) {
	if a.Interfaces != nil {
		return a.Interfaces()
	}
	return SystemInterfaces()
}

// Run advertises the machine until ctx is done, then says goodbye and
// returns nil. It returns an error only when it cannot start.
func (a *Agent) Run(ctx context.Context) error {
	p, err := a.Prepare()
	if err != nil {
		return err
	}
	log := a.logger("mdns")
	ann := a.Announcer
	if ann == nil {
		ann = MDNSAnnouncer{Logger: log}
	}
	ifPoll := a.InterfacePoll
	if ifPoll <= 0 {
		ifPoll = DefaultInterfacePoll
	}
	resign := a.Resign
	if resign <= 0 {
		resign = DefaultResign
	}
	refresh := time.Duration(a.Config.RefreshInterval)

	// Wide-area DNS-SD runs beside multicast DNS, in a goroutine of its
	// own: a slow or unreachable name server never holds up the
	// multicast announcements.
	var wide *wideArea
	if wc := a.Config.WideArea; wc != nil {
		wide = newWideArea(*wc, a.logger("wide-area"))
		wctx, wcancel := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() {
			defer close(done)
			wide.run(wctx)
		}()
		defer func() {
			wcancel()
			<-done
		}()
	}

	ad := &advertiser{a: a, p: p, log: log, ann: ann, wide: wide, ifPoll: ifPoll, resign: resign,
		warned: map[string]bool{}, keyTried: time.Now()}
	ad.checkInterfaces()
	ifTick := time.NewTicker(ifPoll)
	defer ifTick.Stop()
	refTick := time.NewTicker(refresh)
	defer refTick.Stop()
	for {
		select {
		case <-ctx.Done():
			ad.stop("stopping")
			return nil
		case <-ifTick.C:
			ad.checkInterfaces()
		case <-refTick.C:
			ad.refreshText()
		}
	}
}

// advertiser is what [Agent.Run] keeps between its ticks: the current
// registration and what it announced. Its methods run on Run's
// goroutine only.
type advertiser struct {
	a      *Agent
	p      *Plan
	log    *slog.Logger
	ann    Announcer
	wide   *wideArea // nil without wide-area DNS-SD
	ifPoll time.Duration
	resign time.Duration

	reg      Registration
	curKey   string // interfaces and addresses of reg
	addrs    []netip.Addr
	sent     sample    // what reg's TXT says
	signedAt time.Time // when it was signed
	warned   map[string]bool
	keyTried time.Time // when a missing signing key was last looked for
	missing  string    // configured interfaces missing, as last logged
}

// publishWide hands an to the wide-area registration, if any.
func (ad *advertiser) publishWide(an *discovery.Announcement) {
	if ad.wide != nil {
		ad.wide.publish(Service{Instance: ad.p.Instance, Port: ad.p.Machine.Port, TXT: an.TXT(), Addrs: ad.addrs})
	}
}

// stop says goodbye, if registered.
func (ad *advertiser) stop(why string) {
	if ad.reg != nil {
		start := time.Now()
		ad.reg.Shutdown()
		ad.log.Info("goodbye sent", "why", why, "took", time.Since(start).Round(time.Millisecond))
		ad.reg = nil
		ad.curKey = ""
	}
}

// checkInterfaces (re-)registers when the usable interfaces or their
// addresses changed.
func (ad *advertiser) checkInterfaces() {
	a, p, log := ad.a, ad.p, ad.log
	all, err := a.interfaces()
	if err != nil {
		log.Warn("cannot list interfaces", "error", err)
		return
	}
	chosen, miss := chooseInterfaces(all, a.Config.Interfaces)
	if m := strings.Join(miss, ","); m != ad.missing {
		ad.missing = m
		if m != "" {
			log.Warn("configured interfaces missing, down or without address", "interfaces", m)
		}
	}
	key := ifaceKey(chosen)
	if key == ad.curKey && ad.reg != nil {
		return
	}
	ad.stop("interfaces changed")
	if len(chosen) == 0 {
		if !ad.warned["no-iface"] {
			log.Warn("no usable network interface (up, multicast, with an address); waiting for one")
			ad.warned["no-iface"] = true
		}
		return
	}
	ad.warned["no-iface"] = false
	var dropped int
	ad.addrs, dropped = addressesOf(chosen)
	if dropped > 0 {
		log.Warn("too many addresses for one TXT string; announcing the first ones", "dropped", dropped)
	}
	s := a.measure(p, ad.warned)
	now := time.Now()
	an, err := p.compose(ad.addrs, s, now)
	if err != nil {
		log.Error("cannot compose the announcement", "error", err)
		return
	}
	ad.publishWide(an)
	ifs := make([]net.Interface, len(chosen))
	for i, c := range chosen {
		ifs[i] = c.Interface
	}
	r, err := ad.ann.Announce(Service{Instance: p.Instance, Host: p.Host, Port: p.Machine.Port, TXT: an.TXT(), Interfaces: ifs, Addrs: ad.addrs})
	if err != nil {
		if !ad.warned["announce"] {
			log.Warn("cannot advertise; retrying every poll", "error", err, "poll", ad.ifPoll)
			ad.warned["announce"] = true
		}
		return
	}
	ad.warned["announce"] = false
	ad.reg, ad.curKey, ad.sent, ad.signedAt = r, key, s, now
	log.Info("advertising", "instance", p.Instance, "service", discovery.ServiceType, "port", p.Machine.Port,
		"interfaces", ifaceNames(ifs), "addrs", joinAddrs(ad.addrs), "load", s.load, "free-disk", s.freeDisk,
		"signed", p.Key != nil)
}

// refreshText announces a new TXT when the load or free space moved or
// the signature is getting old.
func (ad *advertiser) refreshText() {
	if ad.reg == nil {
		return
	}
	a, p := ad.a, ad.p
	s := a.measure(p, ad.warned)
	now := time.Now()
	old := now.Sub(ad.signedAt) >= ad.resign
	// A key made after the start (guix archive --generate-key) is used
	// as soon as it is readable.
	newKey := false
	if p.Key == nil && now.Sub(ad.keyTried) >= KeyRetry {
		ad.keyTried = now
		if k, err := pki.ReadPrivateKey(a.Config.SigningKey); err == nil {
			p.Key, newKey = k, true
			a.logger("detect").Info("signing key found; signing announcements from now on",
				"signing-key", a.Config.SigningKey, "key", k.Public().String())
		}
	}
	if !meaningful(ad.sent, s) && !old && !newKey {
		return
	}
	an, err := p.compose(ad.addrs, s, now)
	if err != nil {
		ad.log.Error("cannot compose the announcement", "error", err)
		return
	}
	ad.reg.SetText(an.TXT())
	ad.publishWide(an)
	ad.log.Debug("announcement refreshed", "load", s.load, "free-disk", s.freeDisk, "resign", old)
	ad.sent, ad.signedAt = s, now
}

func joinAddrs(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

// DryRun prints to w the announcement the agent would send now, without
// touching the network: instance, SRV host and port, interfaces with
// their addresses, then the TXT record one key=value per line.
func (a *Agent) DryRun(w io.Writer) error {
	p, err := a.Prepare()
	if err != nil {
		return err
	}
	all, err := a.interfaces()
	if err != nil {
		return err
	}
	chosen, missing := chooseInterfaces(all, a.Config.Interfaces)
	addrs, _ := addressesOf(chosen)
	an, err := p.compose(addrs, a.measure(p, map[string]bool{}), time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "instance: %s\n", p.Instance)
	fmt.Fprintf(w, "service: %s.local.\n", discovery.ServiceType)
	fmt.Fprintf(w, "host: %s\n", p.Host)
	fmt.Fprintf(w, "port: %d\n", p.Machine.Port)
	if len(chosen) == 0 {
		fmt.Fprintln(w, "interfaces: none usable (up, multicast, with an address)")
	}
	for _, c := range chosen {
		fmt.Fprintf(w, "interface: %s %s\n", c.Name, joinAddrs(servedAddrs(c)))
	}
	for _, m := range missing {
		fmt.Fprintf(w, "interface: %s missing, down or without address\n", m)
	}
	if wc := a.Config.WideArea; wc != nil {
		inst, host := newWideArea(*wc, nil).names(&Service{Instance: p.Instance})
		fmt.Fprintf(w, "wide-area: %s (host %s, key %s)\n", inst, host, wc.TSIGKey)
	}
	fmt.Fprintf(w, "signed: %v\n", p.Key != nil)
	fmt.Fprintln(w, "txt:")
	for _, s := range an.TXT() {
		fmt.Fprintf(w, "  %s\n", s)
	}
	return nil
}
