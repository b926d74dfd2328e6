;;; Stand-in for (gnu services).  See ../README.
(define-module (gnu services)
  #:use-module (guix records)
  #:use-module (srfi srfi-9)
  #:export (service-type service-type? service-type-name
            service-type-extensions service-type-compose service-type-extend
            service-type-default-value service-type-description
            service-extension service-extension?
            service-extension-target service-extension-compute
            service service? service-kind service-value
            activation-service-type account-service-type
            profile-service-type))

(define-record-type* <service-type> service-type make-service-type
  service-type?
  (name service-type-name)
  (extensions service-type-extensions)
  (compose service-type-compose (default #f))
  (extend service-type-extend (default #f))
  (default-value service-type-default-value (default 'no-default))
  (description service-type-description (default #f)))

(define-record-type <service-extension>
  (service-extension target compute)
  service-extension?
  (target service-extension-target)
  (compute service-extension-compute))

(define-record-type <service>
  (make-service kind value)
  service?
  (kind service-kind)
  (value service-value))

(define* (service type #:optional (value (service-type-default-value type)))
  (make-service type value))

(define activation-service-type
  (service-type (name 'activate) (extensions '())))
(define account-service-type
  (service-type (name 'account) (extensions '())))
(define profile-service-type
  (service-type (name 'profile) (extensions '())))
