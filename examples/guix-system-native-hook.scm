;; Guix System: make guix-daemon run guix-offload's hook (the "native hook").
;;
;; guix-daemon runs "$GUIX offload SYSTEM MAX-SILENT-TIME PRINT-BUILD-TRACE
;; BUILD-TIMEOUT" for every build it might offload.  Point GUIX at the shim
;; made by
;;
;;   guix-offload install-shim /var/lib/guix-offload/bin
;;
;; and guix-daemon runs our hook for 'guix offload', while every other
;; subcommand it runs through GUIX (substitute, authenticate,
;; perform-download, ...) goes to the real guix, unchanged.
;;
;; The daemon's own guix lives in the store, not on the daemon's PATH, so
;; tell the shim where it is, through a link that survives reconfigures
;; (a /gnu/store/... path would go stale at the next one): in
;; /etc/guix-offload/hook.toml set
;;
;;   real-guix = "/run/current-system/profile/bin/guix"
;;
;; The 'environment' field of guix-configuration needs a recent Guix.
;; Merge the service below into your operating-system declaration, then
;; 'guix system reconfigure' and 'herd restart guix-daemon'.
;;
;; To undo: remove the "GUIX=..." (and "GUIX_OFFLOAD_CONFIG=...") strings,
;; reconfigure, 'herd restart guix-daemon', then
;; 'guix-offload install-shim --remove /var/lib/guix-offload/bin'.

(use-modules (gnu) (gnu services base))

(operating-system
  ;; ... your host-name, bootloader, file-systems, users, packages ...
  (services
   (modify-services %base-services
     (guix-service-type
      config => (guix-configuration
                 (inherit config)
                 (environment
                  (append
                   '("GUIX=/var/lib/guix-offload/bin/guix"
                     ;; Optional: the default is /etc/guix-offload/hook.toml.
                     "GUIX_OFFLOAD_CONFIG=/etc/guix-offload/hook.toml")
                   (guix-configuration-environment config))))))))
