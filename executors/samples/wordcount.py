# A small PySpark app: counts the words of the text file named by its first argument and
# prints the counts as one JSON line (sluice-spark keeps it as the job's result `output`).
import json
import sys

from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()
lines = spark.sparkContext.textFile(sys.argv[1])
counts = dict(
    lines.flatMap(lambda l: l.split()).map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b).collect()
)
spark.stop()
print(json.dumps(counts, sort_keys=True))
