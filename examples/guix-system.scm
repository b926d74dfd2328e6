;; Guix System: guix-offload on the master and on a build machine, with the
;; service module dist/guix/guix-offload/services.scm (docs/guix-system.md).
;;
;; `sudo make install' puts the module in /usr/local/share/guile/site/3.0:
;;
;;   sudo guix system reconfigure -L /usr/local/share/guile/site/3.0 config.scm
;;
;; The programs are static binaries at /usr/local/bin (or give the services
;; a package of your channel: (program (file-append guix-offload
;; "/bin/guix-offload"))).

(use-modules (gnu)
             (gnu services base)
             (guix-offload services))

(operating-system
  ;; ... your host-name, bootloader, file-systems, users, packages ...
  (services
   (append
    (list
     ;; On the master: guix-daemon runs our offload hook through the
     ;; `guix' shim, and a watcher keeps the discovered machines current.
     (service guix-offload-hook-service-type)
     (service guix-offload-discover-service-type)
     ;; On a build machine: advertise it (needs /etc/guix/signing-key.sec,
     ;; which Guix System makes).
     (service guix-offload-agent-service-type
              (guix-offload-agent-configuration
               (extra-options '("--features" "kvm,big-parallel")))))
    (modify-services %base-services
      (guix-service-type config =>
                         (guix-configuration-with-offload-hook config))))))
