# bench/run: the scaling plot, from the columns bench/run extracts from
# results.json into a .dat file. Called as: gnuplot -e "dat='F'; png='P'" scaling.gp
set terminal pngcairo size 1400,560 font ",11"
set output png
set multiplot layout 1,2
set logscale xy
set xrange [0.7:1500]
set xtics ("1" 1, "10" 10, "100" 100, "1000" 1000)
set xlabel "N (client processes; raw sessions)"
set grid
set key top left font ",9"
set title "Time per client or session (guest, TCG)"
set ylabel "µs"
set format y "%.0f"
plot dat using 1:2 with linespoints lw 2 title "raw preserve / session", \
     dat using 1:3 with linespoints lw 2 title "luod preserve / client", \
     dat using 1:4 with linespoints lw 2 title "raw restore / session", \
     dat using 1:5 with linespoints lw 2 title "luod restore / client", \
     dat using 1:6 with linespoints lw 2 dt 2 title "barrier / client", \
     dat using 1:7 with linespoints lw 2 dt 2 title "CLAIM p99", \
     50 with lines lc rgb "gray" dt 3 title "target: barrier 50 µs", \
     1000 with lines lc rgb "black" dt 3 title "target: CLAIM p99 1 ms"
set title "luod / baseline (left axis), luod's peak RSS (right axis)"
set ylabel "luod time / raw kernel path time"
set yrange [1:*]
set y2label "MiB"
set y2tics
set ytics nomirror
set y2range [0:10]
plot dat using 1:8 with linespoints lw 2 title "preserve side ratio", \
     dat using 1:9 with linespoints lw 2 title "restore side ratio", \
     2 with lines lc rgb "gray" dt 3 title "target: 2×", \
     dat using 1:10 axes x1y2 with linespoints lw 2 dt 2 title "luod RSS (MiB, right)", \
     8 axes x1y2 with lines lc rgb "black" dt 3 title "target: 8 MiB"
unset multiplot
