;;; guix-offload --- zero-config build offloading for GNU Guix
;;; SPDX-License-Identifier: GPL-3.0-or-later
;;;
;;; Guix System services for guix-offload (docs/guix-system.md):
;;;
;;;   guix-offload-agent-service-type     on each build machine: advertise it
;;;   guix-offload-discover-service-type  on the master: keep the snapshot of
;;;                                       discovered machines current
;;;   guix-offload-hook-service-type      on the master: the `guix' shim that
;;;                                       guix-daemon runs as its GUIX
;;;   guix-offload-daemon-environment     the daemon environment that points
;;;                                       GUIX at that shim
;;;
;;; Use it with `guix system reconfigure -L DIR', DIR being the directory
;;; that holds guix-offload/services.scm (`make install' puts it in
;;; /usr/local/share/guile/site/3.0).
;;;
;;; Guix interfaces relied upon, all long-standing: define-record-type*
;;; (guix records); service-type, service-extension, service
;;; (gnu services); profile-service-type (gnu services);
;;; shepherd-root-service-type, shepherd-service
;;; (gnu services shepherd); activation-service-type and
;;; account-service-type (gnu services); user-account, user-group
;;; (gnu system shadow); guix-configuration and its `environment' field
;;; (gnu services base), which needs Guix 1.4.0 or later; file-append and
;;; gexps (guix gexp); shadow (gnu packages admin), for nologin.

(define-module (guix-offload services)
  #:use-module (gnu services)
  #:use-module (gnu services shepherd)
  #:use-module (gnu services base)
  #:use-module (gnu system shadow)
  #:use-module (gnu packages admin)
  #:use-module (guix gexp)
  #:use-module (guix records)
  #:use-module (srfi srfi-1)
  #:export (guix-offload-agent-configuration
            guix-offload-agent-configuration?
            guix-offload-agent-configuration-program
            guix-offload-agent-configuration-config-file
            guix-offload-agent-configuration-signing-key
            guix-offload-agent-configuration-extra-options
            guix-offload-agent-configuration-log-file
            guix-offload-agent-configuration-package
            guix-offload-agent-shepherd-service
            guix-offload-agent-service-type

            guix-offload-discover-configuration
            guix-offload-discover-configuration?
            guix-offload-discover-configuration-program
            guix-offload-discover-configuration-cache
            guix-offload-discover-configuration-acl
            guix-offload-discover-configuration-trust
            guix-offload-discover-configuration-pins
            guix-offload-discover-configuration-extra-options
            guix-offload-discover-configuration-log-file
            guix-offload-discover-shepherd-service
            guix-offload-discover-service-type

            guix-offload-hook-configuration
            guix-offload-hook-configuration?
            guix-offload-hook-configuration-program
            guix-offload-hook-configuration-shim-directory
            guix-offload-hook-configuration-real-guix
            guix-offload-hook-activation
            guix-offload-hook-service-type

            guix-offload-daemon-environment
            guix-configuration-with-offload-hook))

;;; Commentary:
;;;
;;; The programs are not in Guix: PROGRAM fields default to where
;;; `make install' puts them and also take a file-like object, such as
;;; (file-append guix-offload "/bin/guix-offload") for a package of your
;;; channel.  The binaries are static, so ones built elsewhere run here.
;;;
;;; Code:


;;;
;;; The agent, on each build machine.
;;;

(define-record-type* <guix-offload-agent-configuration>
  guix-offload-agent-configuration make-guix-offload-agent-configuration
  guix-offload-agent-configuration?
  (program       guix-offload-agent-configuration-program ;string | file-like
                 (default "/usr/local/bin/guix-offload-agent"))
  (config-file   guix-offload-agent-configuration-config-file ;#f | string | file-like
                 (default #f))
  (signing-key   guix-offload-agent-configuration-signing-key ;string
                 (default "/etc/guix/signing-key.sec"))
  (extra-options guix-offload-agent-configuration-extra-options ;list of strings
                 (default '()))
  (log-file      guix-offload-agent-configuration-log-file ;string
                 (default "/var/log/guix-offload-agent.log"))
  ;; A package that provides bin/guix-offload-agent, added to the system
  ;; profile: a master's hook then finds `guix-offload-agent relay' on the
  ;; offload login's PATH and talks to this machine's daemon directly.
  (package       guix-offload-agent-configuration-package ;#f | package
                 (default #f)))

(define (guix-offload-agent-profile config)
  "Return the packages CONFIG adds to the system profile."
  (let ((package (guix-offload-agent-configuration-package config)))
    (if package (list package) '())))

(define (guix-offload-agent-shepherd-service config)
  "Return the Shepherd service that runs the agent as CONFIG says.  It runs
as root: it must read the signing key, which only root can read."
  (let ((program (guix-offload-agent-configuration-program config))
        (config-file (guix-offload-agent-configuration-config-file config))
        (signing-key (guix-offload-agent-configuration-signing-key config))
        (extra (guix-offload-agent-configuration-extra-options config))
        (log-file (guix-offload-agent-configuration-log-file config)))
    (list (shepherd-service
           (provision '(guix-offload-agent))
           (requirement '(networking guix-daemon))
           (documentation "Advertise this build machine on the LAN for
guix-offload's masters.")
           (start #~(make-forkexec-constructor
                     (list #$program
                           #$@(if config-file
                                  (list "--config" config-file)
                                  '())
                           "--signing-key" #$signing-key
                           #$@extra)
                     #:log-file #$log-file))
           (stop #~(make-kill-destructor))
           (respawn? #t)))))

(define guix-offload-agent-service-type
  (service-type
   (name 'guix-offload-agent)
   (extensions
    (list (service-extension shepherd-root-service-type
                             guix-offload-agent-shepherd-service)
          (service-extension profile-service-type
                             guix-offload-agent-profile)))
   (default-value (guix-offload-agent-configuration))
   (description
    "Run @command{guix-offload-agent}, which advertises this build machine
on the LAN, signed with its Guix signing key, so that masters running
guix-offload can offload builds to it.")))


;;;
;;; The discovery watcher, on the master.
;;;

(define %guix-offload-user "guix-offload")

(define (valid-trust trust)
  (unless (member trust '("acl" "tofu" "any"))
    (error "guix-offload-discover-configuration: trust must be \"acl\", \
\"tofu\" or \"any\", got" trust))
  trust)

(define-record-type* <guix-offload-discover-configuration>
  guix-offload-discover-configuration make-guix-offload-discover-configuration
  guix-offload-discover-configuration?
  (program       guix-offload-discover-configuration-program ;string | file-like
                 (default "/usr/local/bin/guix-offload"))
  ;; Where the hook and the bridge read the snapshot (cache in hook.toml).
  (cache         guix-offload-discover-configuration-cache ;string
                 (default "/var/cache/guix-offload/machines.json"))
  (acl           guix-offload-discover-configuration-acl ;string
                 (default "/etc/guix/acl"))
  (trust         guix-offload-discover-configuration-trust ;"acl" | "tofu" | "any"
                 (default "acl"))
  ;; Where the watcher pins host keys with trust "tofu": a directory of its
  ;; own, never /var/lib/guix-offload, where root's shim lives.
  (pins          guix-offload-discover-configuration-pins ;string
                 (default "/var/lib/guix-offload-discover/tofu-pins.json"))
  (extra-options guix-offload-discover-configuration-extra-options ;list of strings
                 (default '()))
  (log-file      guix-offload-discover-configuration-log-file ;string
                 (default "/var/log/guix-offload-discover.log")))

(define (cache-directory config)
  (dirname (guix-offload-discover-configuration-cache config)))

(define (guix-offload-discover-accounts config)
  ;; The watcher parses what anyone on the LAN sends: it runs as its own
  ;; unprivileged user, which can write nothing but its cache.
  (list (user-group (name %guix-offload-user) (system? #t))
        (user-account
         (name %guix-offload-user)
         (group %guix-offload-user)
         (system? #t)
         (comment "guix-offload discovery watcher")
         (home-directory "/var/empty")
         (create-home-directory? #f)
         (shell (file-append shadow "/sbin/nologin")))))

(define (guix-offload-discover-activation config)
  #~(begin
      (use-modules (guix build utils))
      (let ((user (getpwnam #$%guix-offload-user)))
        (for-each (lambda (directory)
                    (mkdir-p directory)
                    (chown directory (passwd:uid user) (passwd:gid user))
                    (chmod directory #o755))
                  (list #$(cache-directory config)
                        #$(dirname (guix-offload-discover-configuration-pins config)))))))

(define (guix-offload-discover-shepherd-service config)
  "Return the Shepherd service that keeps CONFIG's snapshot current."
  (let ((program (guix-offload-discover-configuration-program config))
        (cache (guix-offload-discover-configuration-cache config))
        (acl (guix-offload-discover-configuration-acl config))
        (trust (valid-trust (guix-offload-discover-configuration-trust config)))
        (pins (guix-offload-discover-configuration-pins config))
        (extra (guix-offload-discover-configuration-extra-options config))
        (log-file (guix-offload-discover-configuration-log-file config)))
    (list (shepherd-service
           (provision '(guix-offload-discover))
           (requirement '(networking))
           (documentation "Watch the LAN for Guix build machines and keep
a snapshot of them for the offload hook.")
           (start #~(make-forkexec-constructor
                     (list #$program "discover" "--watch"
                           "--cache" #$cache
                           "--acl" #$acl
                           "--trust" #$trust
                           "--pins" #$pins
                           #$@extra)
                     #:user #$%guix-offload-user
                     #:group #$%guix-offload-user
                     #:log-file #$log-file))
           (stop #~(make-kill-destructor))
           (respawn? #t)))))

(define guix-offload-discover-service-type
  (service-type
   (name 'guix-offload-discover)
   (extensions
    (list (service-extension shepherd-root-service-type
                             guix-offload-discover-shepherd-service)
          (service-extension account-service-type
                             guix-offload-discover-accounts)
          (service-extension activation-service-type
                             guix-offload-discover-activation)))
   (default-value (guix-offload-discover-configuration))
   (description
    "Run @command{guix-offload discover --watch --cache}, which keeps a
snapshot of the build machines announced on the LAN for guix-offload's
offload hook and the @file{machines.scm} bridge.")))


;;;
;;; The native hook, on the master.
;;;

(define-record-type* <guix-offload-hook-configuration>
  guix-offload-hook-configuration make-guix-offload-hook-configuration
  guix-offload-hook-configuration?
  (program        guix-offload-hook-configuration-program ;string | file-like
                  (default "/usr/local/bin/guix-offload"))
  ;; The shim is SHIM-DIRECTORY/guix.
  (shim-directory guix-offload-hook-configuration-shim-directory ;string
                  (default "/var/lib/guix-offload/bin"))
  ;; Written as real-guix into /etc/guix-offload/hook.toml when that file
  ;; does not exist yet: the guix the shim passes every other subcommand
  ;; to.  A link that survives reconfigurations, never a store file name.
  (real-guix      guix-offload-hook-configuration-real-guix ;string
                  (default "/run/current-system/profile/bin/guix")))

(define (guix-offload-hook-activation config)
  "Return the activation gexp that makes the shim, as `guix-offload
install-shim' does, and a first /etc/guix-offload/hook.toml."
  (let ((program (guix-offload-hook-configuration-program config))
        (directory (guix-offload-hook-configuration-shim-directory config))
        (real-guix (guix-offload-hook-configuration-real-guix config)))
    #~(begin
        (use-modules (guix build utils))
        (let ((shim (string-append #$directory "/guix")))
          (mkdir-p #$directory)
          (when (false-if-exception (lstat shim))
            (delete-file shim))
          (symlink #$program shim))
        (unless (file-exists? "/etc/guix-offload/hook.toml")
          (mkdir-p "/etc/guix-offload")
          (call-with-output-file "/etc/guix-offload/hook.toml"
            (lambda (port)
              (format port "# Made by guix-offload-hook-service-type; \
edit freely (docs/hook.md).~%real-guix = ~s~%" #$real-guix)))))))

(define guix-offload-hook-service-type
  (service-type
   (name 'guix-offload-hook)
   (extensions
    (list (service-extension activation-service-type
                             guix-offload-hook-activation)))
   (default-value (guix-offload-hook-configuration))
   (description
    "Make the @command{guix} shim through which guix-daemon runs
guix-offload's offload hook.  Point the daemon at it with
@code{guix-configuration-with-offload-hook}.")))

(define* (guix-offload-daemon-environment
          #:key (shim-directory "/var/lib/guix-offload/bin")
          (config-file #f))
  "Return the guix-daemon environment entries that make it run SHIM-DIRECTORY's
guix shim as its GUIX, and read CONFIG-FILE as the hook's configuration when
it is not #f."
  (cons (string-append "GUIX=" shim-directory "/guix")
        (if config-file
            (list (string-append "GUIX_OFFLOAD_CONFIG=" config-file))
            '())))

(define* (guix-configuration-with-offload-hook config
                                               #:key (shim-directory
                                                      "/var/lib/guix-offload/bin")
                                               (config-file #f))
  "Return CONFIG, a guix-configuration, with guix-daemon running
guix-offload's hook: its environment gets GUIX (and GUIX_OFFLOAD_CONFIG),
replacing any earlier setting of them.  guix-service-type's extensions
(guix-extension) cannot set the daemon's environment, hence this procedure,
for modify-services:

  (modify-services %base-services
    (guix-service-type config =>
                       (guix-configuration-with-offload-hook config)))"
  (define ours
    (guix-offload-daemon-environment #:shim-directory shim-directory
                                     #:config-file config-file))
  (define (ours? entry)
    (any (lambda (name) (string-prefix? (string-append name "=") entry))
         '("GUIX" "GUIX_OFFLOAD_CONFIG")))
  (guix-configuration
   (inherit config)
   (environment (append ours
                        (remove ours? (guix-configuration-environment config))))))

;;; services.scm ends here
