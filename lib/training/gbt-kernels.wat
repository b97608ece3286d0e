;; The inner loops of the boosted-trees trainer (lib/training/gbt.ts), in WebAssembly: the
;; gradients of the logistic loss, building a gradient histogram over a node's rows, partitioning
;; a node's rows by a split, and adding or subtracting histograms. They run without bounds checks
;; or boxing, with 128-bit SIMD for (gradient, hessian) pairs. `npm run build:kernels` compiles
;; this file into gbt-kernels.ts (a test checks that the two agree).
;;
;; The memory is the caller's, shared, so that a second thread can run a kernel over half of the
;; rows at the same time. Memory layout (all offsets in bytes, chosen by the caller):
;;   order:   u32 row indices, the rows of each node contiguous
;;   bins:    u8 bin of every (row, feature), row-major (rows x cols)
;;   column:  u8 bins of one feature for every row (a column of the column-major copy)
;;   gh:      f32 (gradient, hessian) pair of every row (sums are f64, as LightGBM does)
;;   score:   f64 raw score of every row; y: i32 label; w: f64 weight
;;   hist:    f64 triples (gradient, hessian, count) per bin, 256 bins per feature
(module
  (import "env" "memory" (memory 1 65536 shared))

  ;; e^x for two values at once, to within a few units in the last place for |x| <= 708 (clamped
  ;; beyond; NaN is not expected): x = k ln 2 + r with |r| <= ln 2 / 2, e^r by its Taylor series to degree 13 (in
  ;; Estrin's form: fewer dependent steps, so more of them run in parallel), times 2^k built from
  ;; the exponent bits.
  (func $exp2 (param $x v128) (result v128)
    (local $k v128) (local $r v128) (local $r2 v128) (local $r4 v128)
    (local.set $x (f64x2.pmax (f64x2.pmin (local.get $x) (v128.const f64x2 708.0 708.0)) (v128.const f64x2 -708.0 -708.0)))
    (local.set $k (f64x2.nearest (f64x2.mul (local.get $x) (v128.const f64x2 1.4426950408889634 1.4426950408889634))))
    (local.set $r
      (f64x2.sub
        (f64x2.sub (local.get $x) (f64x2.mul (local.get $k) (v128.const f64x2 0.6931471803691238 0.6931471803691238)))
        (f64x2.mul (local.get $k) (v128.const f64x2 1.9082149292705877e-10 1.9082149292705877e-10))))
    (local.set $r2 (f64x2.mul (local.get $r) (local.get $r)))
    (local.set $r4 (f64x2.mul (local.get $r2) (local.get $r2)))
    (f64x2.mul
      ;; ((q0 + q1 r^2) + (q2 + q3 r^2) r^4) + ((q4 + q5 r^2) + q6 r^4) r^8, qi = c(2i) + c(2i+1) r
      (f64x2.add
        (f64x2.add
          (f64x2.add (f64x2.add (v128.const f64x2 1.0 1.0) (f64x2.mul (v128.const f64x2 1.0 1.0) (local.get $r))) (f64x2.mul (f64x2.add (v128.const f64x2 0.5 0.5) (f64x2.mul (v128.const f64x2 0.16666666666666666 0.16666666666666666) (local.get $r))) (local.get $r2)))
          (f64x2.mul (f64x2.add (f64x2.add (v128.const f64x2 0.041666666666666664 0.041666666666666664) (f64x2.mul (v128.const f64x2 0.008333333333333333 0.008333333333333333) (local.get $r))) (f64x2.mul (f64x2.add (v128.const f64x2 0.001388888888888889 0.001388888888888889) (f64x2.mul (v128.const f64x2 0.0001984126984126984 0.0001984126984126984) (local.get $r))) (local.get $r2))) (local.get $r4)))
        (f64x2.mul
          (f64x2.add
            (f64x2.add (f64x2.add (v128.const f64x2 2.48015873015873e-05 2.48015873015873e-05) (f64x2.mul (v128.const f64x2 2.7557319223985893e-06 2.7557319223985893e-06) (local.get $r))) (f64x2.mul (f64x2.add (v128.const f64x2 2.755731922398589e-07 2.755731922398589e-07) (f64x2.mul (v128.const f64x2 2.505210838544172e-08 2.505210838544172e-08) (local.get $r))) (local.get $r2)))
            (f64x2.mul (f64x2.add (v128.const f64x2 2.08767569878681e-09 2.08767569878681e-09) (f64x2.mul (v128.const f64x2 1.6059043836821613e-10 1.6059043836821613e-10) (local.get $r))) (local.get $r4)))
          (f64x2.mul (local.get $r4) (local.get $r4))))
      ;; 2^k: k + 1023 + 2^52 holds the integer k + 1023 in its low mantissa bits; shifted up by
      ;; 52 they become the exponent field of 2^k.
      (i64x2.shl (f64x2.add (local.get $k) (v128.const f64x2 4503599627371519.0 4503599627371519.0)) (i32.const 52))))

  ;; Exported for the test that checks it against Math.exp.
  (func (export "exp") (param $x f64) (result f64) (f64x2.extract_lane 1 (call $exp2 (f64x2.splat (local.get $x)))))

  ;; Logistic loss for rows [start, end), two at a time: p = sigmoid(score), gradient w (p - y),
  ;; hessian w max(p (1 - p), 1e-16), written as (gradient, hessian) pairs into gh.
  (func (export "gradBinary")
    (param $score i32) (param $y i32) (param $w i32) (param $gh i32) (param $start i32) (param $end i32)
    (local $r i32) (local $p v128) (local $e v128) (local $h v128) (local $pairs v128) (local $out i32)
    (local.set $r (local.get $start))
    (block $done
      (loop $rows
        (br_if $done (i32.ge_u (local.get $r) (local.get $end)))
        ;; Two rows r, r + 1 (the last row alone when the count is odd: its pair partner is ignored).
        (local.set $p
          (f64x2.div (v128.const f64x2 1.0 1.0)
            (f64x2.add (v128.const f64x2 1.0 1.0)
              (call $exp2 (f64x2.neg (v128.load (i32.add (local.get $score) (i32.shl (local.get $r) (i32.const 3)))))))))
        ;; e = w (p - y), h = w max(p (1 - p), 1e-16) for both rows.
        (local.set $e
          (f64x2.mul (v128.load (i32.add (local.get $w) (i32.shl (local.get $r) (i32.const 3))))
            (f64x2.sub (local.get $p)
              (f64x2.convert_low_i32x4_s (v128.load64_zero (i32.add (local.get $y) (i32.shl (local.get $r) (i32.const 2))))))))
        (local.set $h
          (f64x2.mul (v128.load (i32.add (local.get $w) (i32.shl (local.get $r) (i32.const 3))))
            (f64x2.pmax (f64x2.mul (local.get $p) (f64x2.sub (v128.const f64x2 1.0 1.0) (local.get $p))) (v128.const f64x2 1e-16 1e-16))))
        ;; As float32, interleaved: (g_r, h_r, g_r+1, h_r+1).
        (local.set $pairs
          (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23
            (f32x4.demote_f64x2_zero (local.get $e)) (f32x4.demote_f64x2_zero (local.get $h))))
        (local.set $out (i32.add (local.get $gh) (i32.shl (local.get $r) (i32.const 3))))
        (if (i32.lt_u (i32.add (local.get $r) (i32.const 1)) (local.get $end))
          (then (v128.store (local.get $out) (local.get $pairs)))
          (else (v128.store64_lane 0 (local.get $out) (local.get $pairs))))
        (local.set $r (i32.add (local.get $r) (i32.const 2)))
        (br $rows))))

;; Adds the node's rows (order[start..end)) to `hist` for features [from, to): each row's
  ;; (gradient, hessian) pair to its bin's pair, 1 to its bin's count. Two features per step.
  (func (export "histAll")
    (param $order i32) (param $start i32) (param $end i32) (param $bins i32) (param $cols i32)
    (param $gh i32) (param $hist i32) (param $from i32) (param $to i32)
    (local $i i32) (local $r i32) (local $pair v128) (local $o i32) (local $c i32) (local $k i32) (local $k2 i32) (local $fb i32)
    (local.set $i (local.get $start))
    (block $done
      (loop $rows
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $r (i32.load (i32.add (local.get $order) (i32.shl (local.get $i) (i32.const 2)))))
        (local.set $pair (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $gh) (i32.shl (local.get $r) (i32.const 3))))))
        (local.set $o (i32.add (local.get $bins) (i32.mul (local.get $r) (local.get $cols))))
        (local.set $c (local.get $from))
        ;; $fb: the histogram of feature $c (256 bins of 24 bytes).
        (local.set $fb (i32.add (local.get $hist) (i32.mul (local.get $from) (i32.const 6144))))
        (block $pairs_done
          (loop $pairs
            (br_if $pairs_done (i32.ge_u (i32.add (local.get $c) (i32.const 1)) (local.get $to)))
            (local.set $k (i32.add (local.get $fb) (i32.mul (i32.load8_u (i32.add (local.get $o) (local.get $c))) (i32.const 24))))
            (local.set $k2
              (i32.add (local.get $fb)
                (i32.add (i32.const 6144) (i32.mul (i32.load8_u offset=1 (i32.add (local.get $o) (local.get $c))) (i32.const 24)))))
            (v128.store (local.get $k) (f64x2.add (v128.load (local.get $k)) (local.get $pair)))
            (f64.store offset=16 (local.get $k) (f64.add (f64.load offset=16 (local.get $k)) (f64.const 1)))
            (v128.store (local.get $k2) (f64x2.add (v128.load (local.get $k2)) (local.get $pair)))
            (f64.store offset=16 (local.get $k2) (f64.add (f64.load offset=16 (local.get $k2)) (f64.const 1)))
            (local.set $fb (i32.add (local.get $fb) (i32.const 12288)))
            (local.set $c (i32.add (local.get $c) (i32.const 2)))
            (br $pairs)))
        (if (i32.lt_u (local.get $c) (local.get $to))
          (then
            (local.set $k (i32.add (local.get $fb) (i32.mul (i32.load8_u (i32.add (local.get $o) (local.get $c))) (i32.const 24))))
            (v128.store (local.get $k) (f64x2.add (v128.load (local.get $k)) (local.get $pair)))
            (f64.store offset=16 (local.get $k) (f64.add (f64.load offset=16 (local.get $k)) (f64.const 1)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $rows))))

  ;; The same for the features listed in active[from..to) (u32 feature indices).
  (func (export "histActive")
    (param $order i32) (param $start i32) (param $end i32) (param $bins i32) (param $cols i32)
    (param $gh i32) (param $hist i32) (param $active i32) (param $from i32) (param $to i32)
    (local $i i32) (local $r i32) (local $pair v128) (local $o i32) (local $j i32) (local $c i32) (local $k i32)
    (local.set $i (local.get $start))
    (block $done
      (loop $rows
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $r (i32.load (i32.add (local.get $order) (i32.shl (local.get $i) (i32.const 2)))))
        (local.set $pair (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $gh) (i32.shl (local.get $r) (i32.const 3))))))
        (local.set $o (i32.add (local.get $bins) (i32.mul (local.get $r) (local.get $cols))))
        (local.set $j (local.get $from))
        (block $features_done
          (loop $features
            (br_if $features_done (i32.ge_u (local.get $j) (local.get $to)))
            (local.set $c (i32.load (i32.add (local.get $active) (i32.shl (local.get $j) (i32.const 2)))))
            (local.set $k
              (i32.add (local.get $hist)
                (i32.mul
                  (i32.add (i32.shl (local.get $c) (i32.const 8)) (i32.load8_u (i32.add (local.get $o) (local.get $c))))
                  (i32.const 24))))
            (v128.store (local.get $k) (f64x2.add (v128.load (local.get $k)) (local.get $pair)))
            (f64.store offset=16 (local.get $k) (f64.add (f64.load offset=16 (local.get $k)) (f64.const 1)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $features)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $rows))))

  ;; Moves the node's rows that go left (bin 1..splitBin, or bin 0 = missing when missingLeft) to
  ;; the front of order[start..end), the others after them, both in their original order, using
  ;; `scratch` (u32, end-start entries) for the right side. Returns the index where the right side starts.
  (func (export "partition")
    (param $order i32) (param $start i32) (param $end i32) (param $column i32) (param $splitBin i32)
    (param $missingLeft i32) (param $scratch i32) (result i32)
    (local $p i32) (local $i i32) (local $right i32) (local $r i32) (local $b i32) (local $left i32)
    (local.set $p (local.get $start))
    (local.set $i (local.get $start))
    (block $done
      (loop $rows
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $r (i32.load (i32.add (local.get $order) (i32.shl (local.get $p) (i32.const 2)))))
        (local.set $b (i32.load8_u (i32.add (local.get $column) (local.get $r))))
        (local.set $left
          (select (local.get $missingLeft) (i32.le_u (local.get $b) (local.get $splitBin)) (i32.eqz (local.get $b))))
        (i32.store (i32.add (local.get $order) (i32.shl (local.get $i) (i32.const 2))) (local.get $r))
        (i32.store (i32.add (local.get $scratch) (i32.shl (local.get $right) (i32.const 2))) (local.get $r))
        (local.set $i (i32.add (local.get $i) (local.get $left)))
        (local.set $right (i32.add (local.get $right) (i32.sub (i32.const 1) (local.get $left))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $rows)))
    (memory.copy
      (i32.add (local.get $order) (i32.shl (local.get $i) (i32.const 2)))
      (local.get $scratch)
      (i32.shl (local.get $right) (i32.const 2)))
    (local.get $i))

;; The best split of a node from its histogram over the features in active[0..features): for
  ;; each feature, bins 1..b go left for every b, missing values (bin 0) right and then left. A
  ;; candidate needs minCount rows and minHess hessian on each side; its gain is
  ;; GL^2/(HL+lambda) + GR^2/(HR+lambda) - G^2/(H+lambda). Empty bins are skipped (the split after
  ;; one equals the split before it). The best (strictly larger gain first found, above 1e-12) is
  ;; written to `out`: f64 gain, GL, HL, CL, then i32 feature, bin, missingLeft. Returns 1 if any.
  (func (export "bestSplit")
    (param $hist i32) (param $nBins i32) (param $active i32) (param $features i32)
    (param $G f64) (param $H f64) (param $count f64)
    (param $lambda f64) (param $minCount f64) (param $minHess f64) (param $out i32) (result i32)
    (local $parent f64) (local $best f64) (local $found i32) (local $j i32) (local $c i32) (local $base i32)
    (local $mg f64) (local $mh f64) (local $mc f64) (local $last i32) (local $b i32) (local $k i32)
    (local $gl f64) (local $hl f64) (local $cl f64) (local $cb f64)
    (local $GL f64) (local $HL f64) (local $CL f64) (local $gain f64)
    (local.set $parent (f64.div (f64.mul (local.get $G) (local.get $G)) (f64.add (local.get $H) (local.get $lambda))))
    (local.set $best (f64.const 1e-12))
    (block $features_done
      (loop $features
        (br_if $features_done (i32.ge_u (local.get $j) (local.get $features)))
        (local.set $c (i32.load (i32.add (local.get $active) (i32.shl (local.get $j) (i32.const 2)))))
        (local.set $base (i32.add (local.get $hist) (i32.mul (local.get $c) (i32.const 6144))))
        (local.set $mg (f64.load (local.get $base)))
        (local.set $mh (f64.load offset=8 (local.get $base)))
        (local.set $mc (f64.load offset=16 (local.get $base)))
        (local.set $last (i32.sub (i32.load (i32.add (local.get $nBins) (i32.shl (local.get $c) (i32.const 2)))) (i32.const 1)))
        (local.set $gl (f64.const 0))
        (local.set $hl (f64.const 0))
        (local.set $cl (f64.const 0))
        (local.set $b (i32.const 1))
        (block $bins_done
          (loop $bins
            (br_if $bins_done (i32.ge_s (local.get $b) (local.get $last)))
            (local.set $k (i32.add (local.get $base) (i32.mul (local.get $b) (i32.const 24))))
            (local.set $cb (f64.load offset=16 (local.get $k)))
            (if (f64.ne (local.get $cb) (f64.const 0))
              (then
                (local.set $gl (f64.add (local.get $gl) (f64.load (local.get $k))))
                (local.set $hl (f64.add (local.get $hl) (f64.load offset=8 (local.get $k))))
                (local.set $cl (f64.add (local.get $cl) (local.get $cb)))
                (if (i32.and
              (i32.and (f64.ge (local.get $cl) (local.get $minCount)) (f64.ge (f64.sub (local.get $count) (local.get $cl)) (local.get $minCount)))
              (i32.and (f64.ge (local.get $hl) (local.get $minHess)) (f64.ge (f64.sub (local.get $H) (local.get $hl)) (local.get $minHess))))
                  (then
            (local.set $gain (f64.sub
                (f64.add
                  (f64.div (f64.mul (local.get $gl) (local.get $gl)) (f64.add (local.get $hl) (local.get $lambda)))
                  (f64.div
                    (f64.mul (f64.sub (local.get $G) (local.get $gl)) (f64.sub (local.get $G) (local.get $gl)))
                    (f64.add (f64.sub (local.get $H) (local.get $hl)) (local.get $lambda))))
                (local.get $parent)))
            (if (f64.gt (local.get $gain) (local.get $best))
              (then
                (local.set $best (local.get $gain))
                (f64.store (local.get $out) (local.get $gain))
                (f64.store offset=8 (local.get $out) (local.get $gl))
                (f64.store offset=16 (local.get $out) (local.get $hl))
                (f64.store offset=24 (local.get $out) (local.get $cl))
                (i32.store offset=32 (local.get $out) (local.get $c))
                (i32.store offset=36 (local.get $out) (local.get $b))
                (i32.store offset=40 (local.get $out) (i32.const 0))
                (local.set $found (i32.const 1))))))
                (if (f64.gt (local.get $mc) (f64.const 0))
                  (then
                    (local.set $GL (f64.add (local.get $gl) (local.get $mg)))
                    (local.set $HL (f64.add (local.get $hl) (local.get $mh)))
                    (local.set $CL (f64.add (local.get $cl) (local.get $mc)))
                    (if (i32.and
              (i32.and (f64.ge (local.get $CL) (local.get $minCount)) (f64.ge (f64.sub (local.get $count) (local.get $CL)) (local.get $minCount)))
              (i32.and (f64.ge (local.get $HL) (local.get $minHess)) (f64.ge (f64.sub (local.get $H) (local.get $HL)) (local.get $minHess))))
                      (then
            (local.set $gain (f64.sub
                (f64.add
                  (f64.div (f64.mul (local.get $GL) (local.get $GL)) (f64.add (local.get $HL) (local.get $lambda)))
                  (f64.div
                    (f64.mul (f64.sub (local.get $G) (local.get $GL)) (f64.sub (local.get $G) (local.get $GL)))
                    (f64.add (f64.sub (local.get $H) (local.get $HL)) (local.get $lambda))))
                (local.get $parent)))
            (if (f64.gt (local.get $gain) (local.get $best))
              (then
                (local.set $best (local.get $gain))
                (f64.store (local.get $out) (local.get $gain))
                (f64.store offset=8 (local.get $out) (local.get $GL))
                (f64.store offset=16 (local.get $out) (local.get $HL))
                (f64.store offset=24 (local.get $out) (local.get $CL))
                (i32.store offset=32 (local.get $out) (local.get $c))
                (i32.store offset=36 (local.get $out) (local.get $b))
                (i32.store offset=40 (local.get $out) (i32.const 1))
                (local.set $found (i32.const 1))))))))))
            (local.set $b (i32.add (local.get $b) (i32.const 1)))
            (br $bins)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $features)))
    (local.get $found))

  ;; score[order[i] * outputs + k] += value for i in [start, end): a leaf's value to its rows.
  (func (export "addLeaf")
    (param $order i32) (param $start i32) (param $end i32) (param $score i32) (param $outputs i32) (param $k i32) (param $value f64)
    (local $i i32) (local $at i32)
    (local.set $i (local.get $start))
    (block $done
      (loop $rows
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $at
          (i32.add (local.get $score)
            (i32.shl
              (i32.add (i32.mul (i32.load (i32.add (local.get $order) (i32.shl (local.get $i) (i32.const 2)))) (local.get $outputs)) (local.get $k))
              (i32.const 3))))
        (f64.store (local.get $at) (f64.add (f64.load (local.get $at)) (local.get $value)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $rows))))

  ;; Zeroes `bytes` bytes from `at`.
  (func (export "zero") (param $at i32) (param $bytes i32)
    (memory.fill (local.get $at) (i32.const 0) (local.get $bytes)))

  ;; a[k] += b[k] for `count` f64 values (count even).
  (func (export "add") (param $a i32) (param $b i32) (param $count i32)
    (local $end i32)
    (local.set $end (i32.add (local.get $a) (i32.shl (local.get $count) (i32.const 3))))
    (block $done
      (loop $values
        (br_if $done (i32.ge_u (local.get $a) (local.get $end)))
        (v128.store (local.get $a) (f64x2.add (v128.load (local.get $a)) (v128.load (local.get $b))))
        (local.set $a (i32.add (local.get $a) (i32.const 16)))
        (local.set $b (i32.add (local.get $b) (i32.const 16)))
        (br $values))))

  ;; a[k] -= b[k] for `count` f64 values (count even).
  (func (export "subtract") (param $a i32) (param $b i32) (param $count i32)
    (local $end i32)
    (local.set $end (i32.add (local.get $a) (i32.shl (local.get $count) (i32.const 3))))
    (block $done
      (loop $values
        (br_if $done (i32.ge_u (local.get $a) (local.get $end)))
        (v128.store (local.get $a) (f64x2.sub (v128.load (local.get $a)) (v128.load (local.get $b))))
        (local.set $a (i32.add (local.get $a) (i32.const 16)))
        (local.set $b (i32.add (local.get $b) (i32.const 16)))
        (br $values)))))
