;;; Stand-in for (gnu system shadow): user accounts and groups.  See
;;; ../../README.
(define-module (gnu system shadow)
  #:use-module (guix records)
  #:export (user-account user-account? user-account-name user-account-group
            user-account-system? user-account-shell user-account-home-directory
            user-account-create-home-directory?
            user-group user-group? user-group-name user-group-system?))

(define-record-type* <user-account> user-account make-user-account
  user-account?
  (name user-account-name)
  (group user-account-group)
  (comment user-account-comment (default ""))
  (home-directory user-account-home-directory (default "/home/user"))
  (create-home-directory? user-account-create-home-directory? (default #t))
  (shell user-account-shell (default "/bin/sh"))
  (system? user-account-system? (default #f)))

(define-record-type* <user-group> user-group make-user-group
  user-group?
  (name user-group-name)
  (system? user-group-system? (default #f)))
