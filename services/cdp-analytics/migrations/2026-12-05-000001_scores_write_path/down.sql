ALTER TABLE customer_scores RESET (fillfactor);
CREATE INDEX customer_scores_segment_idx ON customer_scores (tenant_id, rfm_segment);
CREATE INDEX customer_scores_tier_idx ON customer_scores (tenant_id, clv_tier, predicted_value DESC);
CREATE INDEX customer_scores_risk_idx ON customer_scores (tenant_id, churn_risk, churn_probability DESC);
