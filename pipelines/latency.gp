# latency.gp: Figure 1 of make reproduce — the wall time to generate a batch with SEDD at k steps
# (median, 10th-90th percentile bars) against GPT-2 with a KV cache (dashed: it does not depend
# on k), one colour per batch size. gnuplot -e "dir='DIR'; batches='1 8'; title='...'" reads
# DIR/latency-sedd.tsv (batch steps median p10 p90) and DIR/latency-gpt2.tsv (batch steps median,
# two rows per batch spanning the steps); writes DIR/latency.svg.tmp and DIR/latency.png.tmp.
set datafile separator "\t"
set logscale xy
set xlabel "SEDD sampling steps k"
set ylabel "seconds per batch (median)"
set key top left
set grid
set title title noenhanced
sedd = dir.'/latency-sedd.tsv'
gpt2 = dir.'/latency-gpt2.tsv'
n = words(batches)
p(i) = word(batches, i) + 0
set terminal svg size 800,500 dynamic
set output dir.'/latency.svg.tmp'
plot for [i=1:n] sedd using ($1 == p(i) ? $2 : NaN):3:4:5 with yerrorlines lc i pt 7 \
         title sprintf('SEDD, batch %d', p(i)), \
     for [i=1:n] gpt2 using ($1 == p(i) ? $2 : NaN):3 with lines lc i dt 2 lw 2 \
         title sprintf('GPT-2 with KV cache, batch %d', p(i))
set terminal pngcairo size 800,500
set output dir.'/latency.png.tmp'
replot
