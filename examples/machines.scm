;;; /etc/guix/machines.scm — the build machines Guix's offload hook may use.
;;;
;;; Guix evaluates this file on every offload request and uses the value
;;; of its last expression: a list of build-machine records.  Print what
;;; it means with:  guix-offload machines examples/machines.scm

#| Each machine needs its SSH host key (from /etc/ssh/ssh_host_ed25519_key.pub
   on the build machine), and the master's /etc/guix/acl must authorize the
   build machine's Guix signing key:
     guix archive --authorize < builder-signing-key.pub
   #| Block comments nest. |# |#

;; Shared settings: guix-daemon runs the offload hook as root, so the key
;; lives in root's home.
(define %user "offload")
(define %private-key "/root/.ssh/guix-offload")

(define %x86
  (build-machine
    (name "hydra.lan")
    (systems (list "x86_64-linux" "i686-linux"))
    (user %user)
    (private-key %private-key)
    (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@hydra")
    (parallel-builds 4)
    (speed 2.)                          ; twice as fast as the master
    (features '("kvm" "big-parallel"))))

;; A second x86 box: same settings, its own name and host key.
(define %x86-small
  (build-machine
    (inherit %x86)
    (name "tower.lan")
    (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB2hR6tq7Zb8r8yWwq0d8yq5Z9pQKfJfG3Xy6m4lVv1e root@tower")
    (parallel-builds 2)
    (speed 1.)
    (features '())))

;; The ARM board builds two systems at different speeds: one entry per
;; system, made with map.
(define (arm-board system speed)
  (build-machine
    (name "rockpro64.lan")
    (port 2222)
    (systems (list system))
    (user %user)
    (private-key %private-key)
    (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKq3Qh0dZ8s1yR8fQ2mXy0o4sJc6bB7tNn3wLr5uPpZa root@rockpro64")
    (overload-threshold #f)             ; always worth a try
    (speed speed)))

(append (list %x86
              %x86-small
              #;(build-machine (inherit %x86) (name "retired.lan")))
        (map (lambda (system+speed)
               (arm-board (car system+speed) (cdr system+speed)))
             '(("aarch64-linux" . 1.) ("armhf-linux" . .5))))
