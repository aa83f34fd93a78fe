# The four tables of tasks/models.py, key for key and index for index
# (tests/test_terraform.py compares them with the PynamoDB models). No TTL:
# the models keep every task and key until someone deletes them.

resource "aws_dynamodb_table" "tasks" {
  # checkov:skip=CKV_AWS_119:Encrypted at rest with the AWS managed key (aws/dynamodb); a customer managed key would add a key policy every role must be written into and cost per month without narrowing who can read the table, which IAM already decides.
  name                        = "${local.prefix}-tasks"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "id"
  deletion_protection_enabled = local.deletion_protection

  attribute {
    name = "id"
    type = "S"
  }
  attribute {
    name = "due_listing"
    type = "S"
  }
  attribute {
    name = "due_at"
    type = "S"
  }
  attribute {
    name = "created_at"
    type = "S"
  }
  attribute {
    name = "listing"
    type = "S"
  }
  attribute {
    name = "schedule_id"
    type = "S"
  }
  attribute {
    name = "occurrence_at"
    type = "S"
  }

  # Keys only, and keys that do not change as a task runs: each index entry
  # is written once, when the task is stored, and claiming a task and
  # recording its attempt touch no index (tasks/models.py). There is no
  # status index: its entry moved twice in every task's life.

  # Every task by its next attempt ("what is due next"; reconcile's window).
  global_secondary_index {
    name            = "due-due_at-index"
    hash_key        = "due_listing"
    range_key       = "due_at"
    projection_type = "KEYS_ONLY"
  }

  # All tasks, newest first (one constant partition, "task").
  global_secondary_index {
    name            = "listing-created_at-index"
    hash_key        = "listing"
    range_key       = "created_at"
    projection_type = "KEYS_ONLY"
  }

  # A recurring schedule's occurrences, newest first. Sparse: only the
  # occurrence tasks have a schedule_id.
  global_secondary_index {
    name            = "schedule_id-occurrence_at-index"
    hash_key        = "schedule_id"
    range_key       = "occurrence_at"
    projection_type = "KEYS_ONLY"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }
}

resource "aws_dynamodb_table" "api_keys" {
  # checkov:skip=CKV_AWS_119:Encrypted at rest with the AWS managed key (aws/dynamodb); see the tasks table. The table holds only sha256 hashes of the keys.
  name                        = "${local.prefix}-api-keys"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "key_hash"
  deletion_protection_enabled = local.deletion_protection

  attribute {
    name = "key_hash"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }
}

resource "aws_dynamodb_table" "operators" {
  # checkov:skip=CKV_AWS_119:Encrypted at rest with the AWS managed key (aws/dynamodb); see the tasks table. Passwords are stored as PBKDF2 hashes.
  name                        = "${local.prefix}-operators"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "username"
  deletion_protection_enabled = local.deletion_protection

  attribute {
    name = "username"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }
}

resource "aws_dynamodb_table" "schedules" {
  # checkov:skip=CKV_AWS_119:Encrypted at rest with the AWS managed key (aws/dynamodb); see the tasks table.
  name                        = "${local.prefix}-schedules"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "id"
  deletion_protection_enabled = local.deletion_protection

  attribute {
    name = "id"
    type = "S"
  }
  attribute {
    name = "listing"
    type = "S"
  }
  attribute {
    name = "created_at"
    type = "S"
  }

  # All recurring schedules, newest first (one constant partition, "schedule").
  global_secondary_index {
    name            = "listing-created_at-index"
    hash_key        = "listing"
    range_key       = "created_at"
    projection_type = "ALL"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }
}
