# genppl.gp: generative perplexity of SEDD's samples against its number of sampling steps, with
# the data and GPT-2 rows as horizontal lines. gnuplot -e "dir='DIR'; title='...'" reads
# DIR/genppl-sedd.tsv (steps ppl) and DIR/genppl-ref.tsv (label ppl); writes DIR/genppl.svg.tmp
# and DIR/genppl.png.tmp.
set datafile separator "\t"
set logscale x
set xlabel "SEDD sampling steps"
set ylabel "generative perplexity (judge)"
set key below
set grid
set title title noenhanced
sedd = dir.'/genppl-sedd.tsv'
ref = dir.'/genppl-ref.tsv'
stats sedd using 1 nooutput
lo = STATS_min
hi = STATS_max
# the reference rows: labels (spaces written as no-break spaces) and values, as word lists
labels = system("cut -f1 '".ref."'")
vals = system("cut -f2 '".ref."'")
set xrange [lo / 1.3 : hi * 1.3]
set terminal svg size 800,450 dynamic
set output dir.'/genppl.svg.tmp'
plot sedd using 1:2:xtic(1) with linespoints lw 2 pt 7 title 'SEDD (64-bit sampling)', \
     for [i=1:words(vals)] (word(vals, i) + 0) with lines dt 2 lw 2 lc i + 1 title word(labels, i)
set terminal pngcairo size 800,450
set output dir.'/genppl.png.tmp'
replot
