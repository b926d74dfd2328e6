package candidates

import "github.com/guix-offload/guix-offload/scm"

// Merge returns the static machines followed by the discovered ones that
// no static machine already names. A static entry wins over a discovered
// one with the same host key or the same name and port; when their host
// keys match it then takes the announcement's load and free disk space,
// which machines.scm cannot say (a same-named announcement with another
// host key is another host, whose load says nothing about this one).
// Among discovered machines the first of a name and port wins. Merge does
// not modify its arguments (a static machine that takes an announcement's
// load is a copy).
func Merge(static, discovered []*scm.Machine) []*scm.Machine {
	out := make([]*scm.Machine, 0, len(static)+len(discovered))
	byKey := make(map[string]int, len(static)+len(discovered))
	byHost := make(map[string]int, len(static))
	for i, m := range static {
		out = append(out, m)
		byKey[m.Key()] = i
		if id := scm.HostKeyID(m.HostKey); id != "" {
			byHost[id] = i
		}
	}
	for _, d := range discovered {
		i, ok := byKey[d.Key()]
		if !ok {
			i, ok = byHost[scm.HostKeyID(d.HostKey)]
		}
		if ok {
			s := out[i]
			sameHost := scm.HostKeyID(s.HostKey) != "" && scm.HostKeyID(s.HostKey) == scm.HostKeyID(d.HostKey)
			sLoad, sDisk := s.LoadAndDisk()
			if !s.Discovered() && sameHost && sLoad == scm.Unknown && sDisk == scm.Unknown {
				c := *s
				load, disk := d.LoadAndDisk()
				c.Status = &scm.Status{Load: load, FreeDisk: disk}
				out[i] = &c
			}
			continue
		}
		byKey[d.Key()] = len(out)
		out = append(out, d)
	}
	return out
}
