;;; /etc/guix/machines.scm for a master that keeps Guix's own offload hook
;;; (the "bridge"): the static build machines below, plus those that
;;; guix-offload-agent announces on the LAN and that the master trusts.
;;;
;;; Guix evaluates this file on every offload request, so the list is
;;; always current.  It asks `guix-offload discover --format=scm', which
;;; prints a machines.scm list of the announced machines accepted by the
;;; trust policy: by default only those whose announcement is signed by a
;;; key in /etc/guix/acl.  When the command is missing, fails or prints
;;; something unexpected, only the static machines are used: offloading
;;; never breaks because of discovery.
;;;
;;; With `guix-offload discover --watch --cache FILE' running as a service
;;; (examples/guix-offload-discover.service), the --cache option below
;;; answers at once from that snapshot; without it, each request browses
;;; the LAN for up to a second and a half.

(use-modules (ice-9 match)
             (ice-9 popen)
             (ice-9 textual-ports))

;; Where guix-offload is.  guix-daemon runs the hook with its own PATH;
;; an absolute file name is safest, such as "/usr/local/bin/guix-offload"
;; (make install) or "/run/current-system/profile/bin/guix-offload".
(define %guix-offload "guix-offload")

;; The SSH private key Guix's hook logs in to discovered machines with
;; (root's, for guix-daemon), such as "/root/.ssh/id_ed25519"; announced
;; machines carry none.  #f leaves Guix's default, ~/.ssh/id_rsa.
(define %private-key #f)

;; The snapshot kept by `guix-offload discover --watch --cache FILE'.
(define %discover-cache "/var/cache/guix-offload/machines.json")

(define %static-machines
  (list (build-machine
          (name "big-iron.example.org")
          (systems (list "x86_64-linux" "i686-linux"))
          (user "offload")
          (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@big-iron")
          (parallel-builds 8)
          (speed 4.))))

;; The module this file is loaded in: Guix binds build-machine there.
(define %bridge-module (current-module))

(define (bridge-warning fmt . args)
  "Say on the standard error, which reaches guix-daemon's log, why only
the static machines are used."
  (apply format (current-error-port)
         (string-append "machines.scm: " fmt
                        "; using the static machines only~%")
         args))

(define (discovered-machines)
  "Return the build machines guix-offload discovers, or '() when it cannot,
saying why on the standard error."
  (catch #t
    (lambda ()
      (let* ((port (apply open-pipe* OPEN_READ %guix-offload "discover"
                          "--format=scm" "--timeout=3"
                          (string-append "--cache=" %discover-cache)
                          (if %private-key
                              (list (string-append "--private-key=" %private-key))
                              '())))
             (text (get-string-all port))
             (status (close-pipe port))
             (code (status:exit-val status)))
        (cond
         ((eqv? code 127)
          (bridge-warning "cannot run ~s (not installed? guix-daemon's PATH \
is short: set %guix-offload to its absolute file name)" %guix-offload)
          '())
         ((not (eqv? code 0))
          (bridge-warning "'~a discover' failed (~a; its error is above)"
                          %guix-offload
                          (if code
                              (format #f "exit status ~a" code)
                              (format #f "signal ~a" (status:term-sig status))))
          '())
         (else
          (let ((datum (call-with-input-string text read)))
            (if (eof-object? datum)
                (begin
                  (bridge-warning "'~a discover --format=scm' printed nothing"
                                  %guix-offload)
                  '())
                (let ((machines (eval datum %bridge-module)))
                  (if (list? machines)
                      machines
                      (begin
                        (bridge-warning "'~a discover --format=scm' printed ~s, \
not a list of machines" %guix-offload machines)
                        '())))))))))
    (lambda (key . args)
      (match (cons key args)
        (('system-error subr message message-args . _)
         ;; Guile 3.0.9 and later: a program that cannot be run.
         (bridge-warning "cannot run ~s: ~a" %guix-offload
                         (apply format #f message message-args)))
        (_
         (bridge-warning "what '~a discover' printed cannot be used (~a: ~s)"
                         %guix-offload key args)))
      '())))

(append %static-machines (discovered-machines))
