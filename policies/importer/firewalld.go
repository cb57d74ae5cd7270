package importer

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/portwarden/portwarden/rules"
	"go4.org/netipx"
)

// firewalld zone XML, as firewalld's zone_writer writes it.
type fwZone struct {
	Target       string      `xml:"target,attr"`
	Short        string      `xml:"short"`
	Interfaces   []fwName    `xml:"interface"`
	Sources      []fwSource  `xml:"source"`
	Services     []fwName    `xml:"service"`
	Ports        []fwPort    `xml:"port"`
	Protocols    []fwValue   `xml:"protocol"`
	SourcePorts  []fwPort    `xml:"source-port"`
	IcmpBlocks   []fwName    `xml:"icmp-block"`
	Masquerade   *struct{}   `xml:"masquerade"`
	ForwardPorts []fwForward `xml:"forward-port"`
	Rules        []fwRule    `xml:"rule"`
}

type fwName struct {
	Name string `xml:"name,attr"`
}

type fwValue struct {
	Value string `xml:"value,attr"`
}

type fwSource struct {
	Address string `xml:"address,attr"`
	Mac     string `xml:"mac,attr"`
	IPSet   string `xml:"ipset,attr"`
	Invert  string `xml:"invert,attr"`
}

type fwPort struct {
	Port     string `xml:"port,attr"`
	Protocol string `xml:"protocol,attr"`
}

type fwForward struct {
	Port string `xml:"port,attr"`
}

type fwAction struct {
	Type  string   `xml:"type,attr"`
	Limit *fwValue `xml:"limit"`
}

type fwRule struct {
	Family      string    `xml:"family,attr"`
	Priority    string    `xml:"priority,attr"`
	Source      *fwSource `xml:"source"`
	Destination *struct{} `xml:"destination"`
	Service     *fwName   `xml:"service"`
	Port        *fwPort   `xml:"port"`
	Protocol    *fwValue  `xml:"protocol"`
	IcmpBlock   *struct{} `xml:"icmp-block"`
	IcmpType    *struct{} `xml:"icmp-type"`
	Masquerade  *struct{} `xml:"masquerade"`
	ForwardPort *struct{} `xml:"forward-port"`
	SourcePort  *struct{} `xml:"source-port"`
	Log         *struct{} `xml:"log"`
	Audit       *struct{} `xml:"audit"`
	NFLog       *struct{} `xml:"nflog"`
	Accept      *fwAction `xml:"accept"`
	Reject      *fwAction `xml:"reject"`
	Drop        *fwAction `xml:"drop"`
	Mark        *struct{} `xml:"mark"`
}

type fwService struct {
	Ports        []fwPort `xml:"port"`
	Destinations []struct {
		IPv4 string `xml:"ipv4,attr"`
		IPv6 string `xml:"ipv6,attr"`
	} `xml:"destination"`
	Protocols []fwValue `xml:"protocol"`
}

// fwBuiltinServices are firewalld's shipped definitions of common
// services (/usr/lib/firewalld/services), for zone files given without
// them. Service files among the inputs take precedence.
var fwBuiltinServices = map[string][]fwPort{
	"ssh": {{"22", "tcp"}}, "http": {{"80", "tcp"}}, "https": {{"443", "tcp"}}, "http3": {{"443", "udp"}},
	"dns": {{"53", "tcp"}, {"53", "udp"}}, "cockpit": {{"9090", "tcp"}}, "ntp": {{"123", "udp"}},
	"smtp": {{"25", "tcp"}}, "imaps": {{"993", "tcp"}}, "postgresql": {{"5432", "tcp"}}, "mysql": {{"3306", "tcp"}},
	"redis": {{"6379", "tcp"}}, "snmp": {{"161", "tcp"}, {"161", "udp"}}, "ldap": {{"389", "tcp"}}, "ldaps": {{"636", "tcp"}},
	"prometheus": {{"9090", "tcp"}}, "prometheus-node-exporter": {{"9100", "tcp"}}, "rdp": {{"3389", "tcp"}},
}

// zoneFile is one zone with the line of each child element, for origins.
type zoneFile struct {
	name, file string
	zone       fwZone
	lines      map[string][]int // element name -> line of each occurrence
}

func (z *zoneFile) origin(elem string, i int) string {
	if ls := z.lines[elem]; i < len(ls) {
		return fmt.Sprintf("%s:%d", z.file, ls[i])
	}
	return z.file
}

// ParseFirewalld reads firewalld zone XML files, firewalld.conf (for
// DefaultZone) and service XML files. Source zones (zones with <source>)
// decide their sources' traffic; the default zone decides everyone
// else's. In a zone, rich rules that refuse come first, then rich rules
// that accept, ports and services; the zone's target decides the rest.
func ParseFirewalld(files []File) (*Import, error) {
	im := newImport("firewalld")
	services := map[string][]fwPort{}
	for k, v := range fwBuiltinServices {
		services[k] = v
	}
	defaultZone := "public"
	var zones []*zoneFile
	for _, f := range files {
		root := xmlRoot(f.Data)
		base := strings.TrimSuffix(filepath.Base(f.Name), ".xml")
		switch {
		case root == "zone":
			z, err := readZone(f, base)
			if err != nil {
				return nil, err
			}
			zones = append(zones, z)
			im.Sources = append(im.Sources, f.Name)
		case root == "service":
			var s fwService
			if err := xml.Unmarshal(f.Data, &s); err != nil {
				return nil, fmt.Errorf("%s: %w", f.Name, err)
			}
			if len(s.Destinations) > 0 || len(s.Protocols) > 0 {
				delete(services, base) // reported where it is used
				continue
			}
			services[base] = s.Ports
		case bytes.Contains(f.Data, []byte("DefaultZone=")):
			if m := defaultZoneRe().FindSubmatch(f.Data); m != nil {
				defaultZone = string(m[1])
			}
			im.Sources = append(im.Sources, f.Name)
		}
	}
	if len(zones) == 0 {
		return nil, fmt.Errorf("no firewalld zone XML among the files: give /etc/firewalld/zones (and firewalld.conf)")
	}
	p := &fwParser{im: im, services: services}
	var def *zoneFile
	var sourceZones []*zoneFile
	for _, z := range zones {
		switch {
		case z.name == defaultZone:
			def = z
		case len(z.zone.Sources) > 0:
			sourceZones = append(sourceZones, z)
		case len(z.zone.Interfaces) > 0:
			im.leftOut(z.file, "", "zone %s is bound to interfaces (%s); import treats every interface alike, so only source zones and the default zone are imported", z.name, names(z.zone.Interfaces))
		}
	}
	if def == nil {
		return nil, fmt.Errorf("the default zone %q is not among the zone files: add its XML (from /etc/firewalld/zones or /usr/lib/firewalld/zones)", defaultZone)
	}
	// firewalld accepts loopback traffic before any zone.
	im.Rules = append(im.Rules, Rule{Origin: "firewalld (lo is always accepted)", Loopback: true, Verdict: Accept})
	sort.Slice(sourceZones, func(i, j int) bool { return sourceZones[i].name < sourceZones[j].name })
	reportOverlappingZones(im, sourceZones)
	for _, z := range sourceZones {
		p.zone(z, false)
	}
	p.zone(def, true)
	im.Load = fwLoad(im)
	return im, nil
}

// reportOverlappingZones notes source zones that share addresses: import
// lets the first by name decide them, which firewalld does only when the
// zones' priorities agree.
func reportOverlappingZones(im *Import, zones []*zoneFile) {
	sets := make([]*netipx.IPSet, len(zones))
	for i, z := range zones {
		var ps []netip.Prefix
		for _, s := range z.zone.Sources {
			if a, err := parseAddrs(s.Address); err == nil {
				ps = append(ps, a...)
			}
		}
		sets[i] = setOf(ps...)
	}
	for i := range zones {
		for j := i + 1; j < len(zones); j++ {
			if overlaps(sets[i], sets[j].Prefixes()) {
				im.leftOut(zones[j].file, "", "zones %s and %s share source addresses; import lets %s decide them (the first by name): check the zones' priorities", zones[i].name, zones[j].name, zones[i].name)
			}
		}
	}
}

// Compiled on first use, not at start: every command would pay for it.
var defaultZoneRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?m)^DefaultZone=(\S+)`) })

func names(ns []fwName) string {
	var out []string
	for _, n := range ns {
		out = append(out, n.Name)
	}
	return strings.Join(out, ", ")
}

func xmlRoot(data []byte) string {
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := d.Token()
		if err != nil {
			return ""
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se.Name.Local
		}
	}
}

func readZone(f File, name string) (*zoneFile, error) {
	z := &zoneFile{name: name, file: f.Name, lines: map[string][]int{}}
	if err := xml.Unmarshal(f.Data, &z.zone); err != nil {
		return nil, fmt.Errorf("%s: not firewalld zone XML: %w", f.Name, err)
	}
	// A second pass over the tokens finds each child element's line.
	d := xml.NewDecoder(bytes.NewReader(f.Data))
	depth := 0
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 {
				z.lines[t.Name.Local] = append(z.lines[t.Name.Local], 1+bytes.Count(f.Data[:off], []byte("\n")))
			}
		case xml.EndElement:
			depth--
		}
	}
	return z, nil
}

type fwParser struct {
	im       *Import
	services map[string][]fwPort
}

func (p *fwParser) zone(z *zoneFile, isDefault bool) {
	var zoneSrc *netipx.IPSet
	group := ""
	if !isDefault {
		var ps []netip.Prefix
		for i, s := range z.zone.Sources {
			if s.Address == "" {
				p.im.leftOut(z.origin("source", i), "", "zone %s: a source by MAC address or ipset is not imported", z.name)
				continue
			}
			a, err := parseAddrs(s.Address)
			if err != nil {
				p.im.leftOut(z.origin("source", i), "", "zone %s: source %s: %v", z.name, s.Address, err)
				continue
			}
			ps = append(ps, a...)
		}
		if len(ps) == 0 {
			return
		}
		zoneSrc = setOf(ps...)
		group = identifier(z.name)
		p.im.Groups[group] = ps
	}
	for i, fp := range z.zone.ForwardPorts {
		p.im.leftOut(z.origin("forward-port", i), "", "zone %s: forward-port %s is NAT, not a policy's business", z.name, fp.Port)
	}
	if z.zone.Masquerade != nil {
		p.im.leftOut(z.origin("masquerade", 0), "", "zone %s: masquerade is NAT, not a policy's business", z.name)
	}
	for i, sp := range z.zone.SourcePorts {
		p.im.leftOut(z.origin("source-port", i), "", "zone %s: source port %s/%s is not imported", z.name, sp.Port, sp.Protocol)
	}
	for i, pr := range z.zone.Protocols {
		p.im.leftOut(z.origin("protocol", i), "", "zone %s: protocol %s (a policy manages TCP and UDP ports)", z.name, pr.Value)
	}
	base := Rule{Sources: zoneSrc, Group: group, Comment: "zone " + z.name}
	if isDefault {
		base.Comment = ""
	}
	// Refusing rich rules first, then accepting ones, ports and services.
	for _, pass := range []bool{false, true} {
		for i, r := range z.zone.Rules {
			accept := r.Accept != nil
			if accept == pass {
				p.rich(z, i, r, base)
			}
		}
	}
	for i, port := range z.zone.Ports {
		p.add(base, z.origin("port", i), fmt.Sprintf("<port port=%q protocol=%q/>", port.Port, port.Protocol), port, Accept)
	}
	for i, s := range z.zone.Services {
		ports, ok := p.services[s.Name]
		if !ok {
			p.im.leftOut(z.origin("service", i), "", "zone %s: service %s is not imported: its definition is not among the files, or it limits destinations or protocols", z.name, s.Name)
			continue
		}
		for _, port := range ports {
			r := base
			if r.Comment == "" {
				r.Comment = s.Name
			}
			p.add(r, z.origin("service", i), fmt.Sprintf("<service name=%q/>", s.Name), port, Accept)
		}
	}
	target := Reject // firewalld's "default" target rejects
	switch z.zone.Target {
	case "DROP":
		target = Drop
	case "ACCEPT":
		target = Accept
	}
	targetText := z.zone.Target
	if targetText == "" {
		targetText = "default"
	}
	origin := fmt.Sprintf("%s: zone %s target %s", z.file, z.name, targetText)
	if isDefault {
		for _, fam := range []int{4, 6} {
			p.im.Default[fam] = Fallthrough{Verdict: target, Origin: origin}
		}
		return
	}
	r := base
	r.Origin, r.Verdict = origin, target
	p.im.Rules = append(p.im.Rules, r)
}

func (p *fwParser) add(base Rule, origin, text string, port fwPort, v Verdict) {
	r := base
	r.Origin, r.Text, r.Verdict = origin, text, v
	ports, err := parsePorts(port.Port)
	if err != nil || (port.Protocol != "tcp" && port.Protocol != "udp") {
		p.im.leftOut(origin, text, "not imported: port %s/%s (a policy manages TCP and UDP ports)", port.Port, port.Protocol)
		return
	}
	r.Protocol, r.Ports = rules.Protocol(port.Protocol), ports
	p.im.Rules = append(p.im.Rules, r)
}

func (p *fwParser) rich(z *zoneFile, i int, fr fwRule, base Rule) {
	origin := z.origin("rule", i)
	text := richText(fr)
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	r := base
	switch fr.Family {
	case "ipv4":
		r.Family = 4
	case "ipv6":
		r.Family = 6
	}
	if fr.Priority != "" && fr.Priority != "0" {
		bad("rule priority %s", fr.Priority)
	}
	var src *netipx.IPSet
	if s := fr.Source; s != nil {
		if s.Address == "" {
			bad("a source by MAC address or ipset")
		} else if ps, err := parseAddrs(s.Address); err != nil {
			bad("source %s: %v", s.Address, err)
		} else {
			src = setOf(ps...)
			if strings.EqualFold(s.Invert, "true") || s.Invert == "yes" {
				fam := r.Family
				if fam == 0 {
					fam = 4
					if ps[0].Addr().Is6() {
						fam = 6
					}
				}
				var b netipx.IPSetBuilder
				b.AddPrefix(universe(fam))
				b.RemoveSet(src)
				src, _ = b.IPSet()
			}
			r.Group = ""
			r.Sources = intersect(base.Sources, src)
		}
	}
	for name, present := range map[string]bool{
		"destination": fr.Destination != nil, "protocol": fr.Protocol != nil, "icmp-block": fr.IcmpBlock != nil,
		"icmp-type": fr.IcmpType != nil, "masquerade": fr.Masquerade != nil, "forward-port": fr.ForwardPort != nil,
		"source-port": fr.SourcePort != nil, "mark": fr.Mark != nil,
	} {
		if present {
			bad("%s", name)
		}
	}
	var action *fwAction
	switch {
	case fr.Accept != nil:
		r.Verdict, action = Accept, fr.Accept
	case fr.Reject != nil:
		r.Verdict, action = Reject, fr.Reject
	case fr.Drop != nil:
		r.Verdict, action = Drop, fr.Drop
	default:
		if len(problems) == 0 {
			bad("no accept, reject or drop action")
		}
	}
	if action != nil && action.Limit != nil {
		bad("limit %s", action.Limit.Value)
	}
	var ports []fwPort
	switch {
	case fr.Port != nil:
		ports = []fwPort{*fr.Port}
	case fr.Service != nil:
		var ok bool
		if ports, ok = p.services[fr.Service.Name]; !ok {
			bad("service %s (its definition is not among the files, or it limits destinations or protocols)", fr.Service.Name)
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		p.im.leftOut(origin, text, "not imported: %s", strings.Join(problems, "; "))
		if src != nil {
			p.im.leftOutSources = append(p.im.leftOutSources, src.Prefixes()...)
		}
		return
	}
	if fr.Log != nil || fr.Audit != nil || fr.NFLog != nil {
		p.im.leftOut(origin, text, "logging not imported (portwarden logs refused packets with log = true); the rule's verdict is imported")
	}
	if r.Verdict == Reject && (action.Type == "" || !strings.Contains(action.Type, "prohib")) {
		p.im.note(origin, text, "rejects with %s; portwarden's reject answers ICMP administratively prohibited (both refuse)", orDefault(action.Type, "icmp port-unreachable"))
	}
	if len(ports) == 0 {
		// A rule without port or service decides every port of the zone.
		r.Origin, r.Text = origin, text
		p.im.Rules = append(p.im.Rules, r)
		return
	}
	for _, port := range ports {
		p.add(r, origin, text, port, r.Verdict)
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// richText writes a rich rule the way firewall-cmd lists it, roughly.
func richText(fr fwRule) string {
	parts := []string{"rule"}
	if fr.Family != "" {
		parts = append(parts, fmt.Sprintf("family=%q", fr.Family))
	}
	if s := fr.Source; s != nil {
		src := "source"
		if s.Invert != "" {
			src += " NOT"
		}
		switch {
		case s.Address != "":
			src += fmt.Sprintf(" address=%q", s.Address)
		case s.IPSet != "":
			src += fmt.Sprintf(" ipset=%q", s.IPSet)
		case s.Mac != "":
			src += fmt.Sprintf(" mac=%q", s.Mac)
		}
		parts = append(parts, src)
	}
	if fr.Service != nil {
		parts = append(parts, fmt.Sprintf("service name=%q", fr.Service.Name))
	}
	if fr.Port != nil {
		parts = append(parts, fmt.Sprintf("port port=%q protocol=%q", fr.Port.Port, fr.Port.Protocol))
	}
	if fr.Protocol != nil {
		parts = append(parts, fmt.Sprintf("protocol value=%q", fr.Protocol.Value))
	}
	if fr.ForwardPort != nil {
		parts = append(parts, "forward-port ...")
	}
	if fr.Log != nil {
		parts = append(parts, "log ...")
	}
	for name, a := range map[string]*fwAction{"accept": fr.Accept, "reject": fr.Reject, "drop": fr.Drop} {
		if a != nil {
			s := name
			if a.Type != "" {
				s += fmt.Sprintf(" type=%q", a.Type)
			}
			if a.Limit != nil {
				s += fmt.Sprintf(" limit value=%q", a.Limit.Value)
			}
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, " ")
}

// fwLoad renders the rules as read into iptables-restore input for the
// sandbox: firewalld itself is a daemon the sandbox does not run, so
// import --check for firewalld proves the policy equal to the zones as
// import reads them (the frame firewalld adds: loopback, established
// connections and ICMP accepted).
func fwLoad(im *Import) []LoadStep {
	var out []LoadStep
	for _, fam := range []int{4, 6} {
		var b strings.Builder
		tool, icmp, reject := "iptables-restore", "icmp", "icmp-admin-prohibited"
		if fam == 6 {
			tool, icmp, reject = "ip6tables-restore", "ipv6-icmp", "icmp6-adm-prohibited"
		}
		fmt.Fprintf(&b, "*filter\n:INPUT DROP [0:0]\n-A INPUT -i lo -j ACCEPT\n-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A INPUT -p %s -j ACCEPT\n", icmp)
		target := map[Verdict]string{Accept: "ACCEPT", Drop: "DROP", Reject: "REJECT --reject-with " + reject}
		for _, r := range im.Rules {
			if r.Loopback || !r.matchesFamily(fam) {
				continue
			}
			srcs := []string{""}
			if r.Sources != nil {
				srcs = nil
				for _, p := range familySet(r.Sources, fam).Prefixes() {
					srcs = append(srcs, " -s "+p.String())
				}
			}
			ports := ""
			if r.Protocol != "" {
				ports = " -p " + string(r.Protocol)
				if r.Ports != nil {
					var ps []string
					for _, pr := range r.Ports {
						ps = append(ps, strings.ReplaceAll(portText(pr.First, pr.Last), "-", ":"))
					}
					ports += " -m multiport --dports " + strings.Join(ps, ",")
				}
			}
			for _, s := range srcs {
				fmt.Fprintf(&b, "-A INPUT%s%s -j %s\n", s, ports, target[r.Verdict])
			}
		}
		fmt.Fprintf(&b, "-A INPUT -j %s\nCOMMIT\n", target[im.Default[fam].Verdict])
		out = append(out, LoadStep{Name: tool, Stdin: []byte(b.String())})
	}
	return out
}
