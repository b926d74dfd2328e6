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

(use-modules (ice-9 popen)
             (ice-9 textual-ports))

;; Where guix-offload is.  guix-daemon runs the hook with its own PATH;
;; an absolute file name is safest, such as
;; "/run/current-system/profile/bin/guix-offload" on Guix System.
(define %guix-offload "guix-offload")

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

(define (discovered-machines)
  "Return the build machines guix-offload discovers, or '() when it cannot."
  (catch #t
    (lambda ()
      (let* ((port (open-pipe* OPEN_READ %guix-offload "discover"
                               "--format=scm" "--timeout=3s"
                               (string-append "--cache=" %discover-cache)))
             (text (get-string-all port))
             (status (close-pipe port)))
        (if (and (eqv? 0 (status:exit-val status))
                 (not (string-null? text)))
            (let ((machines (eval (call-with-input-string text read)
                                  %bridge-module)))
              (if (list? machines) machines '()))
            '())))
    (lambda (key . args)
      (format (current-error-port)
              "machines.scm: guix-offload discover failed (~a); using the static machines only~%"
              key)
      '())))

(append %static-machines (discovered-machines))
