"""kube-sentiment: answer and record. The KServe predictor and the prediction-log shipper."""
