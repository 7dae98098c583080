// Package mailtest runs a minimal in-process SMTP server for tests: it
// accepts every message and hands it to the test.
package mailtest

import (
	"bufio"
	"io"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
)

// Message is one delivered message.
type Message struct {
	From string
	To   []string
	// Data is the message as sent (headers and body, CRLF lines).
	Data string
}

// Server is a listening SMTP server.
type Server struct {
	ln   net.Listener
	msgs chan Message
	wg   sync.WaitGroup
}

// Start listens on a free local port until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtp listen: %v", err)
	}
	s := &Server{ln: ln, msgs: make(chan Message, 100)}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

// URL is an RALLY_SMTP_URL pointing at the server.
func (s *Server) URL() string {
	return "smtp://" + s.ln.Addr().String() + "?from=rally@example.com"
}

// Next waits up to ten seconds for the next delivered message.
func (s *Server) Next(t testing.TB) Message {
	t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no mail delivered within 10s")
		return Message{}
	}
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			s.serve(textproto.NewConn(conn))
		}()
	}
}

// serve speaks just enough SMTP for net/smtp: EHLO, MAIL, RCPT, DATA, RSET,
// NOOP, QUIT. It offers no STARTTLS and no AUTH.
func (s *Server) serve(c *textproto.Conn) {
	reply := func(line string) bool { return c.PrintfLine("%s", line) == nil }
	if !reply("220 mailtest ESMTP") {
		return
	}
	var cur Message
	for {
		line, err := c.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			reply("250-mailtest\r\n250 8BITMIME")
		case "MAIL":
			cur = Message{From: addr(arg)}
			reply("250 OK")
		case "RCPT":
			cur.To = append(cur.To, addr(arg))
			reply("250 OK")
		case "DATA":
			if !reply("354 go ahead") {
				return
			}
			data, err := io.ReadAll(bufio.NewReader(c.DotReader()))
			if err != nil {
				return
			}
			cur.Data = string(data)
			s.msgs <- cur
			reply("250 OK queued")
		case "RSET", "NOOP":
			reply("250 OK")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 not implemented")
		}
	}
}

// addr pulls the address out of "FROM:<a@b>" or "TO:<a@b>".
func addr(arg string) string {
	if i := strings.Index(arg, "<"); i >= 0 {
		if j := strings.Index(arg[i:], ">"); j >= 0 {
			return arg[i+1 : i+j]
		}
	}
	return arg
}
