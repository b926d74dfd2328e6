;;; push.scm -- push a file's bytes to a remote 'cat > /dev/null' the way
;;; Guix's offload hook sends an archive to a build machine: one Guile-SSH
;;; (libssh) session, one remote command whose standard input is a channel,
;;; the bytes written to it, end of file, then the remote exit status.
;;;
;;; Usage: guile push.scm HOST PORT USER IDENTITY KNOWN-HOSTS FILE COMPRESSION LEVEL
;;; COMPRESSION is "none" or an SSH compression list such as Guix's
;;; default "zlib@openssh.com,zlib"; LEVEL is the zlib level (Guix: 3).
;;; Prints the wall time of the transfer in nanoseconds, session set-up
;;; excluded.  Written for the guix-offload benchmarks (bench/run.sh).

(use-modules (ssh session) (ssh auth) (ssh key) (ssh popen) (ssh channel)
             (rnrs bytevectors) (rnrs io ports) (ice-9 match))

(define (open host port user identity known-hosts compression level)
  (let ((session (make-session #:host host #:port port #:user user
                               #:identity identity
                               #:knownhosts known-hosts
                               #:timeout 10
                               #:compression compression
                               #:compression-level level)))
    (unless (eq? (connect! session) 'ok)
      (error "connect failed:" (get-error session)))
    (unless (eq? (authenticate-server session) 'ok)
      (error "host key not accepted:" (get-error session)))
    (unless (eq? (userauth-public-key! session
                                       (private-key-from-file identity))
                 'success)
      (error "authentication failed:" (get-error session)))
    session))

(define (push session file)
  (let ((pipe (open-remote-output-pipe session "cat > /dev/null"))
        (in (open-file file "rb"))
        (buf (make-bytevector 65536)))
    (let loop ()
      (let ((n (get-bytevector-n! in buf 0 (bytevector-length buf))))
        (unless (eof-object? n)
          (put-bytevector pipe buf 0 n)
          (loop))))
    (force-output pipe)
    (channel-send-eof pipe)
    (let ((status (channel-get-exit-status pipe)))
      (close-port pipe)
      (close-port in)
      (unless (eqv? status 0)
        (error "remote command failed with status" status)))))

(match (command-line)
  ((_ host port user identity known-hosts file compression level)
   (let ((session (open host (string->number port) user identity known-hosts
                        (if (string=? compression "none") "none" compression)
                        (string->number level)))
         (start (get-internal-real-time)))
     (push session file)
     (let ((ns (* (- (get-internal-real-time) start)
                  (/ 1000000000 internal-time-units-per-second))))
       (disconnect! session)
       (format #t "~a~%" (inexact->exact (round ns))))))
  (_
   (format (current-error-port)
           "usage: guile push.scm HOST PORT USER IDENTITY KNOWN-HOSTS FILE COMPRESSION LEVEL~%")
   (exit 2)))
