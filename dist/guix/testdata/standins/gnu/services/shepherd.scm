;;; Stand-in for (gnu services shepherd).  See ../../README.
(define-module (gnu services shepherd)
  #:use-module (guix records)
  #:use-module (gnu services)
  #:export (shepherd-service shepherd-service?
            shepherd-service-provision shepherd-service-requirement
            shepherd-service-documentation shepherd-service-start
            shepherd-service-stop shepherd-service-respawn?
            shepherd-root-service-type))

(define-record-type* <shepherd-service> shepherd-service make-shepherd-service
  shepherd-service?
  (documentation shepherd-service-documentation (default "[No documentation.]"))
  (provision shepherd-service-provision)
  (requirement shepherd-service-requirement (default '()))
  (respawn? shepherd-service-respawn? (default #t))
  (start shepherd-service-start)
  (stop shepherd-service-stop (default #f)))

(define shepherd-root-service-type
  (service-type (name 'shepherd-root) (extensions '())))
