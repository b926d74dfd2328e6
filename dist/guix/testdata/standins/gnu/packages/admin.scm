;;; Stand-in for (gnu packages admin): the shadow package, as a name.
;;; See ../../README.
(define-module (gnu packages admin)
  #:export (shadow))

(define shadow 'shadow-package)
