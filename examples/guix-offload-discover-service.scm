;;; A Guix System service that runs `guix-offload discover --watch --cache'
;;; on the master, so the offload hook and the machines.scm bridge
;;; (examples/machines-bridge.scm) answer from a current snapshot of the
;;; build machines on the LAN.
;;;
;;; Add it to the services of your operating-system declaration:
;;;
;;;   (operating-system
;;;     ...
;;;     (services (cons guix-offload-discover-service %base-services)))
;;;
;;; GUIX-OFFLOAD below is the guix-offload program; with a guix-offload
;;; package in your channel use (file-append guix-offload "/bin/guix-offload").

(use-modules (gnu services) (gnu services shepherd) (guix gexp))

(define guix-offload "/usr/local/bin/guix-offload")

(define %discover-cache "/var/cache/guix-offload/machines.json")

(define guix-offload-discover-service
  (simple-service 'guix-offload-discover shepherd-root-service-type
    (list (shepherd-service
            (provision '(guix-offload-discover))
            (requirement '(networking))
            (documentation
             "Watch the LAN for Guix build machines and keep a snapshot for the offload hook.")
            (start #~(make-forkexec-constructor
                      (list #$guix-offload "discover" "--watch"
                            "--cache" #$%discover-cache
                            "--acl" "/etc/guix/acl")
                      #:log-file "/var/log/guix-offload-discover.log"))
            (stop #~(make-kill-destructor))
            (respawn? #t)))))
