//! Campaigns: real applications as tenants, alone and co-located, with labels.
