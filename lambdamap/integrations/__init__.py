"""lambdamap under other libraries' parallel APIs (joblib, and through it scikit-learn and DoubleML)."""
