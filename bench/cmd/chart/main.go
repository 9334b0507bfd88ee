// Command chart draws docs/benchmarks.png from the JSON that compare
// writes (-json): one panel per comparison of issue 9, tokenstore and etcd
// as bars side by side, each panel on its own scale (a log scale would
// hide the ratios the goals are stated in). It uses only the standard
// library's image packages and x/image's fixed bitmap font, so the chart
// can be regenerated anywhere the benchmark runs:
//
//	go run ./cmd/chart -in results.json -out ../docs/benchmarks.png
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

type figure struct {
	Label string  `json:"label"`
	Rate  float64 `json:"rate"`
}

// results is the part of compare's JSON the chart draws.
type results struct {
	Machine string   `json:"machine"`
	Reads   []figure `json:"reads"`
	Hot     []struct {
		Clients    int    `json:"clients"`
		Tokenstore figure `json:"tokenstore"`
		Etcd       figure `json:"etcd_naive"`
	} `json:"lastused"`
	Writes []struct {
		Clients    int    `json:"clients"`
		Tokenstore figure `json:"tokenstore_create"`
		Etcd       figure `json:"etcd_put"`
	} `json:"writes"`
	Failover []struct {
		System  string  `json:"system"`
		Elected float64 `json:"time_to_leader_ms"`
		Modes   []struct {
			Mode   string `json:"mode"`
			Failed int    `json:"failed"`
		} `json:"modes"`
	} `json:"failover"`
	Scale []struct {
		System  string  `json:"system"`
		Tokens  int     `json:"tokens"`
		RSS     []int64 `json:"rss_mib"`
		Restart float64 `json:"restart_s"`
		CatchUp float64 `json:"catch_up_s"`
	} `json:"scale"`
}

var (
	tsColor   = color.RGBA{0x1f, 0x77, 0xb4, 0xff}
	etcdColor = color.RGBA{0xff, 0x7f, 0x0e, 0xff}
	ink       = color.RGBA{0x20, 0x20, 0x20, 0xff}
	grid      = color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
)

// bar is one bar of a panel.
type bar struct {
	label string
	value float64
	text  string
	ts    bool
}

// panel is one comparison.
type panel struct {
	title string
	bars  []bar
}

func text(img draw.Image, x, y int, s string, c color.Color) {
	d := &font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func rect(img draw.Image, r image.Rectangle, c color.Color) {
	draw.Draw(img, r, image.NewUniform(c), image.Point{}, draw.Src)
}

const (
	panelW = 460
	panelH = 300
	cols   = 2
)

func drawPanel(img draw.Image, x0, y0 int, p panel) {
	text(img, x0+10, y0+18, p.title, ink)
	top, bottom := y0+40, y0+panelH-50
	rect(img, image.Rect(x0+10, bottom, x0+panelW-10, bottom+1), ink)
	var peak float64
	for _, b := range p.bars {
		peak = max(peak, b.value)
	}
	if peak <= 0 {
		peak = 1
	}
	for i := 1; i <= 4; i++ {
		y := bottom - (bottom-top)*i/4
		rect(img, image.Rect(x0+10, y, x0+panelW-10, y+1), grid)
	}
	n := len(p.bars)
	if n == 0 {
		return
	}
	slot := (panelW - 20) / n
	for i, b := range p.bars {
		h := int(float64(bottom-top) * b.value / peak)
		bx := x0 + 10 + i*slot + slot/6
		c := etcdColor
		if b.ts {
			c = tsColor
		}
		rect(img, image.Rect(bx, bottom-h, bx+slot*2/3, bottom), c)
		text(img, bx, bottom-h-4, b.text, ink)
		text(img, bx, bottom+15, b.label, ink)
	}
}

func rate(v float64) string {
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.1fk", v/1000)
	case v >= 1000:
		return fmt.Sprintf("%.2fk", v/1000)
	}
	return fmt.Sprintf("%.0f", v)
}

func panels(r results) []panel {
	var ps []panel
	if len(r.Reads) > 0 {
		p := panel{title: "(1) authentications/s at a follower, 64 clients"}
		short := map[string]string{"tokenstore bounded": "ts bnd", "etcd serializable": "etcd ser",
			"tokenstore linearizable": "ts lin", "etcd linearizable": "etcd lin"}
		for _, f := range r.Reads {
			p.bars = append(p.bars, bar{label: short[f.Label], value: f.Rate, text: rate(f.Rate), ts: f.Label[0] == 't'})
		}
		ps = append(ps, p)
	}
	if len(r.Hot) > 0 {
		p := panel{title: "(2) hot token auth/s: ts batched vs etcd naive"}
		for _, h := range r.Hot {
			p.bars = append(p.bars,
				bar{label: fmt.Sprintf("ts x%d", h.Clients), value: h.Tokenstore.Rate, text: rate(h.Tokenstore.Rate), ts: true},
				bar{label: fmt.Sprintf("etcd x%d", h.Clients), value: h.Etcd.Rate, text: rate(h.Etcd.Rate)})
		}
		ps = append(ps, p)
	}
	if len(r.Writes) > 0 {
		p := panel{title: "(3) writes/s at the leader: create vs Put"}
		for _, w := range r.Writes {
			p.bars = append(p.bars,
				bar{label: fmt.Sprintf("ts x%d", w.Clients), value: w.Tokenstore.Rate, text: rate(w.Tokenstore.Rate), ts: true},
				bar{label: fmt.Sprintf("etcd x%d", w.Clients), value: w.Etcd.Rate, text: rate(w.Etcd.Rate)})
		}
		ps = append(ps, p)
	}
	if len(r.Failover) > 0 {
		p := panel{title: "(4) failover: ms to next leader (failed auths)"}
		for i, f := range r.Failover {
			failed := ""
			for _, m := range f.Modes {
				failed += fmt.Sprintf("%d/", m.Failed)
			}
			name := "ts"
			if f.System == "etcd" {
				name = "etcd"
			}
			p.bars = append(p.bars, bar{label: fmt.Sprintf("%s #%d", name, i/2+1), value: f.Elected,
				text: fmt.Sprintf("%.0f (%s)", f.Elected, failed[:len(failed)-1]), ts: f.System == "tokenstore"})
		}
		ps = append(ps, p)
	}
	if len(r.Scale) > 0 {
		p := panel{title: fmt.Sprintf("(5) %d tokens: peak RSS MiB per member", r.Scale[0].Tokens)}
		q := panel{title: "(5) seconds: restart to read, new member catch-up"}
		for _, s := range r.Scale {
			var peak int64
			for _, v := range s.RSS {
				peak = max(peak, v)
			}
			ts := s.System == "tokenstore"
			name := map[bool]string{true: "ts", false: "etcd"}[ts]
			p.bars = append(p.bars, bar{label: name, value: float64(peak), text: fmt.Sprint(peak), ts: ts})
			q.bars = append(q.bars,
				bar{label: name + " rst", value: s.Restart, text: fmt.Sprintf("%.1f", s.Restart), ts: ts},
				bar{label: name + " join", value: s.CatchUp, text: fmt.Sprintf("%.1f", s.CatchUp), ts: ts})
		}
		ps = append(ps, p, q)
	}
	return ps
}

func main() {
	in := flag.String("in", "", "compare -json output (several files: comma separated is not supported; merge first)")
	extra := flag.String("scale", "", "optional second compare -json output holding the scale phase")
	out := flag.String("out", "benchmarks.png", "PNG to write")
	flag.Parse()
	var r results
	for _, f := range []string{*in, *extra} {
		if f == "" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "chart:", err)
			os.Exit(1)
		}
		var part results
		if err := json.Unmarshal(b, &part); err != nil {
			fmt.Fprintln(os.Stderr, "chart:", f, err)
			os.Exit(1)
		}
		if r.Machine == "" {
			r.Machine = part.Machine
		}
		r.Reads = append(r.Reads, part.Reads...)
		r.Hot = append(r.Hot, part.Hot...)
		r.Writes = append(r.Writes, part.Writes...)
		r.Failover = append(r.Failover, part.Failover...)
		r.Scale = append(r.Scale, part.Scale...)
	}
	ps := panels(r)
	rows := (len(ps) + cols - 1) / cols
	img := image.NewRGBA(image.Rect(0, 0, cols*panelW, rows*panelH+50))
	rect(img, img.Bounds(), color.White)
	text(img, 10, 20, "tokenstore (blue) vs etcd (orange), same machine, one run: "+r.Machine, ink)
	text(img, 10, 38, "each panel has its own linear scale; see docs/BENCHMARKS.md for every figure", ink)
	for i, p := range ps {
		drawPanel(img, (i%cols)*panelW, 50+(i/cols)*panelH, p)
	}
	f, err := os.Create(*out)
	if err == nil {
		err = png.Encode(f, img)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chart:", err)
		os.Exit(1)
	}
}
