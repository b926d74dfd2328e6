;;; Checks guix-offload/services.scm against the stand-ins (see
;;; standins/README), run by TestGuixServices in cmd/guix-offload:
;;;
;;;   guile --no-auto-compile -L standins -L .. check-services.scm
;;;
;;; Prints "ok NAME" or "FAIL NAME: WHY" per check, and "argv NAME<TAB>ARG…"
;;; for each command line a service would run, which the Go test parses with
;;; the programs' own flags.  Exits 1 when a check failed.

(use-modules (guix-offload services)
             (gnu services)
             (gnu services shepherd)
             (gnu services base)
             (gnu system shadow)
             (guix gexp)
             (srfi srfi-1)
             (ice-9 format)
             (ice-9 match))

(define failures 0)

(define (check name ok? . why)
  (if ok?
      (format #t "ok ~a~%" name)
      (begin
        (set! failures (+ 1 failures))
        (format #t "FAIL ~a: ~s~%" name why))))

(define (extension type target)
  "TYPE's extension of TARGET: the procedure computing its value."
  (any (lambda (ext)
         (and (eq? (service-extension-target ext) target)
              (service-extension-compute ext)))
       (service-type-extensions type)))

(define (object->arg x)
  (if (file-append? x)
      (string-append (object->arg (file-append-base x)) (file-append-suffix x))
      (format #f "~a" x)))

(define (start-argv shepherd)
  "The command line of SHEPHERD's make-forkexec-constructor start gexp."
  (match (gexp-body (shepherd-service-start shepherd))
    (('make-forkexec-constructor ('list args ...) options ...)
     (map object->arg args))))

(define (start-options shepherd)
  (match (gexp-body (shepherd-service-start shepherd))
    (('make-forkexec-constructor argv options ...) options)))

(define (print-argv name argv)
  (format #t "argv ~a~{	~a~}~%" name argv))

(define (shepherd-services type config)
  ((extension type shepherd-root-service-type) config))

(define (tree-contains? tree x)
  (or (equal? tree x)
      (and (pair? tree)
           (or (tree-contains? (car tree) x) (tree-contains? (cdr tree) x)))))

;;; The agent.

(let* ((config (service-type-default-value guix-offload-agent-service-type))
       (services (shepherd-services guix-offload-agent-service-type config))
       (agent (car services))
       (argv (start-argv agent)))
  (check "agent default value" (guix-offload-agent-configuration? config))
  (check "agent provision" (equal? '(guix-offload-agent) (shepherd-service-provision agent)))
  (check "agent after guix-daemon" (memq 'guix-daemon (shepherd-service-requirement agent)))
  (check "agent argv" (equal? argv '("/usr/local/bin/guix-offload-agent"
                                     "--signing-key" "/etc/guix/signing-key.sec"))
         argv)
  (check "agent log file" (tree-contains? (start-options agent) "/var/log/guix-offload-agent.log"))
  (check "agent adds nothing to the profile by default"
         (null? ((extension guix-offload-agent-service-type profile-service-type) config)))
  (print-argv "agent" argv))

(check "agent package goes into the system profile"
       (equal? '(guix-offload-package)
               ((extension guix-offload-agent-service-type profile-service-type)
                (guix-offload-agent-configuration (package 'guix-offload-package)))))

(let* ((config (guix-offload-agent-configuration
                (program (file-append 'guix-offload-package "/bin/guix-offload-agent"))
                (config-file "/etc/guix-offload/agent.toml")
                (extra-options '("--speed" "2" "--features" "kvm,big-parallel"))))
       (argv (start-argv (car (shepherd-services guix-offload-agent-service-type config)))))
  (check "agent argv with options"
         (equal? argv '("guix-offload-package/bin/guix-offload-agent"
                        "--config" "/etc/guix-offload/agent.toml"
                        "--signing-key" "/etc/guix/signing-key.sec"
                        "--speed" "2" "--features" "kvm,big-parallel"))
         argv)
  (print-argv "agent-options" argv))

;;; The discovery watcher.

(let* ((config (service-type-default-value guix-offload-discover-service-type))
       (watcher (car (shepherd-services guix-offload-discover-service-type config)))
       (argv (start-argv watcher))
       (accounts ((extension guix-offload-discover-service-type account-service-type) config))
       (activation ((extension guix-offload-discover-service-type activation-service-type) config)))
  (check "discover provision" (equal? '(guix-offload-discover) (shepherd-service-provision watcher)))
  (check "discover argv"
         (equal? argv '("/usr/local/bin/guix-offload" "discover" "--watch"
                        "--cache" "/var/cache/guix-offload/machines.json"
                        "--acl" "/etc/guix/acl" "--trust" "acl"
                        "--pins" "/var/lib/guix-offload-discover/tofu-pins.json"))
         argv)
  (check "discover runs unprivileged"
         (and (tree-contains? (start-options watcher) #:user)
              (tree-contains? (start-options watcher) "guix-offload")))
  (check "discover system account"
         (any (lambda (a) (and (user-account? a) (string=? "guix-offload" (user-account-name a))
                               (user-account-system? a) (not (user-account-create-home-directory? a))))
              accounts))
  (check "discover group" (any (lambda (g) (and (user-group? g) (user-group-system? g))) accounts))
  (check "discover makes its cache and pins directories"
         (and (gexp? activation)
              (tree-contains? (gexp-body activation) "/var/cache/guix-offload")
              (tree-contains? (gexp-body activation) "/var/lib/guix-offload-discover")))
  (print-argv "discover" argv))

(let ((config (guix-offload-discover-configuration (trust "tofu") (extra-options '("--interface" "eth0")))))
  (print-argv "discover-options"
              (start-argv (car (shepherd-services guix-offload-discover-service-type config)))))

(check "discover refuses an unknown trust policy"
       (catch #t
         (lambda ()
           (shepherd-services guix-offload-discover-service-type
                              (guix-offload-discover-configuration (trust "everyone")))
           #f)
         (const #t)))

(check "records refuse unknown fields"
       (catch #t
         (lambda () (guix-offload-agent-configuration (speed 2)) #f)
         (const #t)))

;;; The native hook.

(let* ((config (service-type-default-value guix-offload-hook-service-type))
       (activation ((extension guix-offload-hook-service-type activation-service-type) config)))
  (check "hook makes the shim"
         (and (tree-contains? (gexp-body activation) "/var/lib/guix-offload/bin")
              (tree-contains? (gexp-body activation) "/usr/local/bin/guix-offload")))
  (check "hook's real guix survives reconfigures"
         (tree-contains? (gexp-body activation) "/run/current-system/profile/bin/guix")))

(check "daemon environment"
       (equal? (guix-offload-daemon-environment)
               '("GUIX=/var/lib/guix-offload/bin/guix")))

(let ((config (guix-configuration-with-offload-hook
               (guix-configuration
                (extra-options '("--max-jobs=4"))
                (environment '("GUIX=/old/guix" "TMPDIR=/tmp/big" "GUIX_OFFLOAD_CONFIG=/old.toml")))
               #:config-file "/etc/guix-offload/hook.toml")))
  (check "daemon environment replaces GUIX, keeps the rest"
         (equal? (guix-configuration-environment config)
                 '("GUIX=/var/lib/guix-offload/bin/guix"
                   "GUIX_OFFLOAD_CONFIG=/etc/guix-offload/hook.toml"
                   "TMPDIR=/tmp/big"))
         (guix-configuration-environment config))
  (check "daemon configuration otherwise inherited"
         (equal? '("--max-jobs=4") (guix-configuration-extra-options config))))

;;; Services can be instantiated as an operating-system would.

(check "services"
       (every service?
              (list (service guix-offload-agent-service-type)
                    (service guix-offload-discover-service-type)
                    (service guix-offload-hook-service-type
                             (guix-offload-hook-configuration
                              (real-guix "/var/guix/profiles/per-user/root/current-guix/bin/guix"))))))

(exit (if (zero? failures) 0 1))
