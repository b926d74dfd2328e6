;; Reader corpus: every construct of Guile's syntax that scm.Read supports.
(a b c) (a . b) (a b . c) [x y] () (())
"plain" "esc \\ \" \n \t \r \a \f \v \b \0 \| end" "hex \x41\x7e; \u00e9 \U01F600"
"line\
continued" "multi
line" "ünïcødé λ"
0 -7 +5 12345678901234567890123456789 2. .5 1e3 -0.5 1.5e-3 -.5e2 3/2 6/4 -1/2 4/2 0/5
#x1F #xff #b101 #o17 #d10 #e1.5 #i3/2 #x-ff #e1e3 +inf.0 -inf.0 1.
#t #f #true #false
#\a #\A #\space #\newline #\tab #\nul #\x41 #\x3bb #\101 #\( #\) #\; #\λ #\alarm #\delete #\escape
foo foo-bar! <=? ->x + - ... 1+ a.b a'b foo#bar |x 1/0 1.2.3 e1 #{foo bar}#
#:foo #:a.b #:with-dash
'a `(a ,b ,@c) '(1 . 2) ''x
; a line comment
#| block #| nested |# still |# after-block
#;(skipped datum) kept
#; #;a b c
#!
script header
!# after-bang
#(1 "two" three) #()
(define (f x) (string-append x "!"))
1e308 1e-308 1e-309 1e-320 1e-324 100000e305 -100000e305 #e1e20 #e1.5e-3 #i1/3
#T #F #TRUE #False #\SPACE #\Space #\Newline #X1F #E1.5 1E3 #\NUL
