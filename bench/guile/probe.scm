;;; probe.scm -- what Guix's offload hook does at least once per candidate
;;; machine and per request: open an SSH session with Guile-SSH (libssh),
;;; check the server's host key, authenticate with a private key, run a
;;; command that reads the load, read its answer, disconnect.
;;;
;;; Usage: guile probe.scm HOST PORT USER IDENTITY KNOWN-HOSTS COUNT
;;; Prints one line per probe: the wall time in nanoseconds.  Written for
;;; the guix-offload benchmarks (bench/run.sh); Guile-SSH is Debian's.

(use-modules (ssh session) (ssh auth) (ssh key) (ssh popen)
             (ice-9 rdelim) (ice-9 match))

(define (probe host port user identity known-hosts)
  (let ((session (make-session #:host host #:port port #:user user
                               #:identity identity
                               #:knownhosts known-hosts
                               #:timeout 10
                               #:compression "zlib@openssh.com,zlib"
                               #:compression-level 3)))
    (unless (eq? (connect! session) 'ok)
      (error "connect failed:" (get-error session)))
    (unless (eq? (authenticate-server session) 'ok)
      (error "host key not accepted:" (get-error session)))
    (unless (eq? (userauth-public-key! session
                                       (private-key-from-file identity))
                 'success)
      (error "authentication failed:" (get-error session)))
    (let* ((pipe (open-remote-input-pipe* session "cat" "/proc/loadavg"))
           (line (read-line pipe)))
      (close-port pipe)
      (disconnect! session)
      (when (eof-object? line)
        (error "no answer from remote command"))
      line)))

(match (command-line)
  ((_ host port user identity known-hosts count)
   (let loop ((i 0))
     (when (< i (string->number count))
       (let ((start (get-internal-real-time)))
         (probe host (string->number port) user identity known-hosts)
         (let ((ns (* (- (get-internal-real-time) start)
                      (/ 1000000000 internal-time-units-per-second))))
           (format #t "~a~%" (inexact->exact (round ns)))
           (force-output)))
       (loop (+ i 1)))))
  (_
   (format (current-error-port)
           "usage: guile probe.scm HOST PORT USER IDENTITY KNOWN-HOSTS COUNT~%")
   (exit 2)))
