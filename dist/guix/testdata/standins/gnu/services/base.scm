;;; Stand-in for (gnu services base): guix-configuration with the fields
;;; the tests use, among them `environment' (Guix 1.4.0 and later).  See
;;; ../../README.
(define-module (gnu services base)
  #:use-module (guix records)
  #:use-module (gnu services)
  #:export (guix-configuration guix-configuration?
            guix-configuration-environment guix-configuration-extra-options
            guix-service-type))

(define-record-type* <guix-configuration> guix-configuration make-guix-configuration
  guix-configuration?
  (extra-options guix-configuration-extra-options (default '()))
  (environment guix-configuration-environment (default '())))

(define guix-service-type
  (service-type (name 'guix) (extensions '())
                (default-value (guix-configuration))))
