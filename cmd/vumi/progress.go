package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progressBar draws "label [=====>    ] done/total" on stderr: redrawn in
// place on a terminal (at most 10 times a second), and as a plain line every
// 5 seconds and at the end otherwise (logs, CI).
type progressBar struct {
	mu    sync.Mutex
	w     io.Writer
	label string
	tty   bool
	quiet bool
	// onlySlow, off a terminal, skips the lines of work done within 2s.
	onlySlow bool
	last     time.Time
	started  time.Time
	done     int64
	total    int64
	drawn    bool
}

func newProgress(w io.Writer, label string, quiet bool) *progressBar {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progressBar{w: w, label: label, tty: tty, quiet: quiet, started: time.Now()}
}

// update records progress and redraws when due.
func (p *progressBar) update(done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done, p.total = done, total
	every := 5 * time.Second
	if p.tty {
		every = 100 * time.Millisecond
	}
	if time.Since(p.last) >= every {
		p.draw(false)
	}
}

// finish draws the final state and ends the line.
func (p *progressBar) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.draw(true)
}

func (p *progressBar) draw(final bool) {
	if p.quiet || p.onlySlow && !p.tty && !p.drawn && time.Since(p.started) < 2*time.Second {
		return
	}
	p.last = time.Now()
	const width = 30
	frac := 1.0
	if p.total > 0 {
		frac = float64(p.done) / float64(p.total)
	}
	frac = min(max(frac, 0), 1)
	fill := int(frac * width)
	bar := strings.Repeat("=", fill)
	if fill < width {
		bar += ">" + strings.Repeat(" ", width-fill-1)
	}
	line := fmt.Sprintf("%s [%s] %d/%d %3.0f%% %s", p.label, bar, p.done, p.total, frac*100, time.Since(p.started).Round(100*time.Millisecond))
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		if final {
			fmt.Fprintln(p.w)
		}
	} else {
		fmt.Fprintln(p.w, line)
	}
	p.drawn = true
}
